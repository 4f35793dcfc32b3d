"""Gitea for the local cluster: an optional local Git forge (``reconciler cluster up --forge``) on which
promotion by pull request runs end to end, with real pull requests, branch protection, commit statuses
and push webhooks. Users with GitHub or GitLab need none of this.

The binary is the pinned Gitea 1.27.3, built from its Go module by ``tools/controlplane/build.sh gitea``
into the version-keyed tool cache (``<cache>/bin/gitea-1.27.3/gitea``) with the ``templates/``,
``options/`` and ``public/`` directories it reads at run time next to it (no ``bindata`` build tag, so
those are files; ``[server] STATIC_ROOT_PATH`` points there). SQLite is Gitea's default pure-Go driver
(``modernc.org/sqlite``; ``models/db/driver_sqlite_modernc.go`` is built unless the ``sqlite_mattn`` tag
is given), so no build tags and no cgo are needed.

Everything Gitea writes lives under ``<state>/gitea`` (:class:`GiteaFiles`); the HTTP server listens on
127.0.0.1 only, SSH is off, and the instance is locked (installed, registration off): the one user is the
administrator :data:`ADMIN_USER` that :func:`bootstrap` creates, whose API token is kept in a 0600 file.

Configuration keys are those of Gitea's configuration cheat sheet
(https://docs.gitea.com/administration/config-cheat-sheet, version 1.27; the defaults are in the module's
``custom/conf/app.example.ini``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from reconciler.devcluster.binaries import BUILD_SCRIPT, BuildError, _version
from reconciler.devcluster.forge import User
from reconciler.errors import ReconcilerError

#: The administrator :func:`bootstrap` creates.
ADMIN_USER = "reconciler-admin"
ADMIN_EMAIL = "reconciler-admin@localhost.invalid"
#: Seconds the ``gitea admin`` commands of :func:`bootstrap` may take each.
ADMIN_COMMAND_TIMEOUT = 60.0


class GiteaError(ReconcilerError):
    """Gitea could not be configured or bootstrapped; the message says which step failed and why."""


@dataclass(frozen=True)
class GiteaFiles:
    """The files of one local Gitea, under ``root`` (``<state>/gitea``).

    ``app.ini`` and the three credential files are mode 0600: they hold secrets.
    """

    root: Path

    @property
    def app_ini(self) -> Path:
        """Gitea's configuration (``--config``), rewritten by :func:`write_config` at each start."""
        return self.root / "app.ini"

    @property
    def data(self) -> Path:
        """``[server] APP_DATA_PATH``: sessions, queues, avatars, the git HOME, …"""
        return self.root / "data"

    @property
    def db(self) -> Path:
        """The SQLite database (``[database] PATH``)."""
        return self.data / "gitea.db"

    @property
    def repos(self) -> Path:
        """The bare repositories (``[repository] ROOT``)."""
        return self.root / "repos"

    @property
    def log(self) -> Path:
        """``[log] ROOT_PATH`` (Gitea's log goes to the console, i.e. ``<state>/logs/gitea.log``)."""
        return self.root / "log"

    @property
    def secrets(self) -> Path:
        """The generated server secrets (:class:`ServerSecrets`), kept across restarts."""
        return self.root / "secrets.json"

    @property
    def admin(self) -> Path:
        """The administrator's login and password (:class:`AdminAccount`)."""
        return self.root / "admin.json"

    @property
    def token(self) -> Path:
        """The administrator's API token (all scopes), alone on one line: ``Authorization: token <it>``."""
        return self.root / "admin-token"


class ServerSecrets(BaseModel):
    """Secrets Gitea needs once installed; generated once, then kept so sessions, hooks and tokens stay
    valid across restarts (Gitea would otherwise generate missing ones and write them into app.ini itself,
    which :func:`write_config` rewrites)."""

    secret_key: str
    internal_token: str
    jwt_secret: str


class AdminAccount(BaseModel):
    """The administrator account :func:`bootstrap` created (the token is in its own file)."""

    username: str
    email: str
    password: str
    token_name: str = ""


def gitea_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned Gitea under ``bin_dir`` (``.../reconciler/bin``)."""
    return bin_dir / f"gitea-{_version('GITEA_VERSION')}" / "gitea"


def ensure_gitea() -> Path:
    """Build Gitea when it is missing (``build.sh gitea``, a no-op when cached; the first build takes about
    3 minutes on 2 cores; progress on stderr) and return its path.

    Raises:
        BuildError: the build failed or left no binary (the message says why; Go's output is above it).
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "gitea"], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    path = gitea_binary(Path(lines[-1])) if lines else None
    if proc.returncode != 0 or path is None or not path.exists():
        raise BuildError(f"building Gitea failed (exit {proc.returncode}); see the output above")
    for sub in ("templates", "options", "public"):
        if not (path.parent / sub).is_dir():
            raise BuildError(
                f"{path.parent / sub} is missing (Gitea reads it at run time); delete {path} and run "
                f"`bash {BUILD_SCRIPT} gitea` again"
            )
    return path


def runs_as_root() -> bool:
    """Whether Gitea would run as root here (this process's effective uid is 0).

    Gitea refuses to run as root unless told it may (``I_AM_BEING_UNSAFE_RUNNING_AS_ROOT``, Gitea's
    ``modules/setting/setting.go``). The alternative, running it as an unprivileged user such as
    ``nobody``, does not work cleanly: the binary lives in the invoking user's tool cache and the state in
    their state directory (``/root`` is mode 0700, as are pytest's temporary directories), so ``nobody``
    could reach neither without loosening the permissions of the user's home; and the reconciler, the
    tests and the demo (running as that user) read the token file and the repositories. So when, and only
    when, the uid is 0, :func:`write_config` sets that key: the server listens on 127.0.0.1 only, has no
    SSH, no registration and one administrator, which is the exposure a local root process has anyway.
    """
    return os.geteuid() == 0


def _secrets(files: GiteaFiles) -> ServerSecrets:
    if files.secrets.exists():
        with contextlib.suppress(ValueError, ValidationError):
            return ServerSecrets.model_validate_json(files.secrets.read_text(encoding="utf-8"))
    made = ServerSecrets(
        secret_key=secrets.token_urlsafe(48),
        internal_token=secrets.token_urlsafe(48),
        # [oauth2] JWT_SECRET: 32 bytes, unpadded URL-safe base64 (Gitea's generate.DecodeJwtSecretBase64)
        jwt_secret=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
    )
    _write_private(files.secrets, made.model_dump_json(indent=1) + "\n")
    return made


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (created so, never readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def base_url(port: int) -> str:
    """The local Gitea's root URL (``ROOT_URL``), with its trailing slash."""
    return f"http://127.0.0.1:{port}/"


def write_config(files: GiteaFiles, port: int, binary: Path) -> None:
    """Write ``app.ini`` (mode 0600) for a Gitea on ``127.0.0.1:port`` whose static files (``templates/``,
    ``options/``, ``public/``) are next to ``binary``; create the data directories. The server secrets are
    generated on first use and kept in :attr:`GiteaFiles.secrets`.

    Sections (https://docs.gitea.com/administration/config-cheat-sheet):

    * root: ``RUN_MODE=prod``, ``WORK_PATH`` (absolute, so Gitea never writes it into app.ini), ``RUN_USER``
      the current user, and ``I_AM_BEING_UNSAFE_RUNNING_AS_ROOT`` only when that is root
      (:func:`runs_as_root` says why);
    * ``[server]``: HTTP on 127.0.0.1, ``DISABLE_SSH``, ``OFFLINE_MODE`` (no CDN, no Gravatar),
      ``LFS_START_SERVER=false``, ``STATIC_ROOT_PATH``;
    * ``[database]``: SQLite in :attr:`GiteaFiles.db`;
    * ``[security]``: ``INSTALL_LOCK`` (no install wizard), the secrets, and ``ALLOWED_HOST_LIST=loopback``
      so webhooks may be delivered to receivers on 127.0.0.1 (the key moved there from ``[webhook]``,
      which Gitea 1.27 reads as deprecated);
    * ``[webhook] DELIVER_TIMEOUT`` seconds; the ``[queue]`` defaults stay (``persistable-channel``:
      pending deliveries survive a restart): a push's webhook arrives within about a second;
    * ``[service]``: no registration, no e-mail confirmation, no captcha;
    * ``[cron.*] ENABLED=false`` for every task that is on by default (mirrors, health checks, statistics,
      archive and hook-history clean-ups, the weekly update check that would call dl.gitea.com): nothing
      runs in the background of an idle forge; ``[indexer] ISSUE_INDEXER_TYPE=db`` (no Bleve index),
      repository indexer off;
    * ``[actions]``, ``[mailer]``, ``[packages]``, ``[oauth2]`` (as a provider) off;
    * ``[log]``: ``MODE=console`` at ``LEVEL=Warn``: the supervisor appends the console to
      ``<state>/logs/gitea.log``, the log ``cluster status`` names and start-up errors quote (a second
      copy under ``ROOT_PATH`` would only duplicate it).
    """
    for d in (files.root, files.data, files.repos, files.log):
        d.mkdir(parents=True, exist_ok=True)
    sec = _secrets(files)
    root_user = runs_as_root()
    run_user = pwd.getpwuid(os.geteuid()).pw_name
    url = base_url(port)
    cron_off = (
        "update_mirrors",
        "repo_health_check",
        "check_repo_stats",
        "archive_cleanup",
        "sync_external_users",
        "deleted_branches_cleanup",
        "update_migration_poster_id",
        "cleanup_hook_task_table",
        "cleanup_packages",
        "update_checker",
    )
    lines = [
        "; written by reconciler (devcluster/gitea.py) at each start: edits are overwritten",
        "APP_NAME = reconciler local forge",
        "RUN_MODE = prod",
        f"RUN_USER = {run_user}",
        f"WORK_PATH = {files.root}",
    ]
    if root_user:
        lines.append("I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true")
    lines += [
        "",
        "[server]",
        "PROTOCOL = http",
        "DOMAIN = 127.0.0.1",
        "HTTP_ADDR = 127.0.0.1",
        f"HTTP_PORT = {port}",
        f"ROOT_URL = {url}",
        f"LOCAL_ROOT_URL = {url}",
        f"APP_DATA_PATH = {files.data}",
        f"STATIC_ROOT_PATH = {binary.parent}",
        "DISABLE_SSH = true",
        "START_SSH_SERVER = false",
        "OFFLINE_MODE = true",
        "LFS_START_SERVER = false",
        "",
        "[database]",
        "DB_TYPE = sqlite3",
        f"PATH = {files.db}",
        "",
        "[repository]",
        f"ROOT = {files.repos}",
        "DEFAULT_BRANCH = main",
        "",
        "[security]",
        "INSTALL_LOCK = true",
        f"SECRET_KEY = {sec.secret_key}",
        f"INTERNAL_TOKEN = {sec.internal_token}",
        "ALLOWED_HOST_LIST = loopback",
        "",
        "[oauth2]",
        "ENABLED = false",
        f"JWT_SECRET = {sec.jwt_secret}",
        "",
        "[webhook]",
        "DELIVER_TIMEOUT = 5",
        "",
        "[service]",
        "DISABLE_REGISTRATION = true",
        "REGISTER_EMAIL_CONFIRM = false",
        "ENABLE_NOTIFY_MAIL = false",
        "ENABLE_CAPTCHA = false",
        "REQUIRE_SIGNIN_VIEW = false",
        "",
        "[indexer]",
        "ISSUE_INDEXER_TYPE = db",
        "REPO_INDEXER_ENABLED = false",
        "",
        "[actions]",
        "ENABLED = false",
        "",
        "[mailer]",
        "ENABLED = false",
        "",
        "[packages]",
        "ENABLED = false",
        "",
        "[picture]",
        "DISABLE_GRAVATAR = true",
        "",
        "[session]",
        "PROVIDER = file",
        "",
        "[log]",
        "MODE = console",
        "LEVEL = Warn",
        f"ROOT_PATH = {files.log}",
    ]
    for task in cron_off:
        lines += ["", f"[cron.{task}]", "ENABLED = false"]
    _write_private(files.app_ini, "\n".join(lines) + "\n")


def command(binary: Path, files: GiteaFiles) -> list[str]:
    """The command line of the local Gitea web server (address and port are in app.ini)."""
    return [str(binary), "web", "--config", str(files.app_ini), "--work-path", str(files.root), "--quiet"]


def _admin(binary: Path, files: GiteaFiles, *args: str, secret: str | None = None) -> str:
    """Run ``gitea admin user <args…>`` against the instance's app.ini and return its stdout.

    ``secret`` (a password given in ``args``) is replaced by ``***`` in any error message.

    Raises:
        GiteaError: the command failed or timed out (the message has its output, secrets masked).
    """
    cmd = [
        str(binary),
        "admin",
        "user",
        *args,
        "--config",
        str(files.app_ini),
        "--work-path",
        str(files.root),
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            timeout=ADMIN_COMMAND_TIMEOUT,
            cwd=files.root,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GiteaError(
            f"`gitea admin user {args[0]}` did not finish in {ADMIN_COMMAND_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        if secret:
            out = out.replace(secret, "***")
        raise GiteaError(f"`gitea admin user {args[0]}` failed (exit {proc.returncode}): {out}")
    return proc.stdout


def _token_works(url: str, token: str, username: str) -> bool:
    """Whether ``token`` authenticates as ``username`` (``GET /api/v1/user``)."""
    req = urllib.request.Request(url + "api/v1/user", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return False
        raise GiteaError(f"GET {url}api/v1/user answered {exc.code}") from None
    except OSError as exc:
        raise GiteaError(f"GET {url}api/v1/user failed: {exc}") from None
    return User.model_validate_json(body).login == username


def bootstrap(binary: Path, files: GiteaFiles, port: int) -> AdminAccount:
    """Make sure the administrator :data:`ADMIN_USER` exists with a working API token (all scopes) in
    :attr:`GiteaFiles.token`; call with Gitea running on ``port``. Idempotent: a token that still works is
    kept; the account is created once (when the database already has it but ``admin.json`` was lost, its
    password is reset to a new one; when ``admin.json`` names an account the database lacks, it is created
    again); a token that no longer works is replaced by a new one.

    Uses the ``gitea admin user create|change-password|generate-access-token`` commands
    (https://docs.gitea.com/administration/command-line), which write the shared SQLite database next
    to the running server. Neither the password nor the token is ever printed or logged.

    Raises:
        GiteaError: a command failed, or the new token does not authenticate.
    """
    url = base_url(port)
    account: AdminAccount | None = None
    if files.admin.exists():
        with contextlib.suppress(ValueError, ValidationError):
            account = AdminAccount.model_validate_json(files.admin.read_text(encoding="utf-8"))
    if account is not None and files.token.exists():
        token = files.token.read_text(encoding="utf-8").strip()
        if token and _token_works(url, token, account.username):
            return account
    if account is None:
        account = _create_admin(binary, files)
    try:
        token = _new_token(binary, files, account)
    except GiteaError as exc:
        if "does not exist" not in str(exc):
            raise
        account = _create_admin(binary, files)
        token = _new_token(binary, files, account)
    if not _token_works(url, token, account.username):
        raise GiteaError(
            "the access token `gitea admin user generate-access-token` made does not authenticate"
        )
    _write_private(files.token, token + "\n")
    _write_private(files.admin, account.model_dump_json(indent=1) + "\n")
    return account


def _create_admin(binary: Path, files: GiteaFiles) -> AdminAccount:
    """Create :data:`ADMIN_USER` with a new random password (or give the existing one that password) and
    record it in :attr:`GiteaFiles.admin`."""
    account = AdminAccount(username=ADMIN_USER, email=ADMIN_EMAIL, password=secrets.token_urlsafe(24))
    base = ["--username", account.username, "--password", account.password]
    try:
        _admin(
            binary,
            files,
            "create",
            *base,
            "--email",
            account.email,
            "--admin",
            "--must-change-password=false",
            secret=account.password,
        )
    except GiteaError as exc:
        if "already exists" not in str(exc):
            raise
        _admin(
            binary, files, "change-password", *base, "--must-change-password=false", secret=account.password
        )
    _write_private(files.admin, account.model_dump_json(indent=1) + "\n")
    return account


def _new_token(binary: Path, files: GiteaFiles, account: AdminAccount) -> str:
    """A new API token with all scopes for ``account`` (its name recorded in ``account.token_name``)."""
    account.token_name = f"reconciler-{time.time_ns()}"  # token names are unique per user
    out = _admin(
        binary,
        files,
        "generate-access-token",
        "--username",
        account.username,
        "--token-name",
        account.token_name,
        "--scopes",
        "all",
        "--raw",
    )
    lines = out.strip().splitlines()
    token = lines[-1].strip() if lines else ""
    if not token:
        raise GiteaError("`gitea admin user generate-access-token --raw` printed no token")
    return token


def read_token(files: GiteaFiles) -> str:
    """The administrator's API token.

    Raises:
        GiteaError: there is none yet (the forge was never started with ``cluster up --forge``).
    """
    try:
        token = files.token.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        raise GiteaError(f"no Gitea admin token in {files.token}: run `reconciler cluster up --forge`")
    return token

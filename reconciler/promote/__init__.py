"""Promotion, rollback and image automation: decide what to write, then ask ``source.gitops`` to commit.

Modules: ``overlay`` (round-trip edits of ``images:``), ``promotion`` (``reconciler promote``),
``rollback`` (``git revert`` of promotions, or one app's images set back), ``history`` (the timeline from
trailers and notes, ``reverted_images``), ``records`` (outcome notes and NATS events), ``auto`` (the
daemon's automatic rollback), ``hosts`` (pull requests and commit statuses on GitHub, GitLab and Gitea),
``cli`` (the commands), ``images`` and ``policy`` (image automation).
"""

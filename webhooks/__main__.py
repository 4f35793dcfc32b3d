"""``python -m webhooks --config FILE``: run the webhook server."""

import sys

from webhooks.server import main

sys.exit(main())

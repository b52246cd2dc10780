"""Access to non-public channels and broadcasts (issue 14 §1; docs/threat-model.md §grants).

* :mod:`appliance.access.tokens`: signed, expiring tokens (pure; HMAC-SHA256).
* :mod:`appliance.access.passwords`: channel passwords (scrypt, constant-time).
* :mod:`appliance.access.service`: :class:`AccessService`, the secret, epochs and passwords.

The HTTP side (cookies, the password form, the checks on every public route) is
:mod:`appliance.api.access`.
"""

from appliance.access.service import WATCH, AccessService
from appliance.access.tokens import Grant, TokenError, parse_token, sign_token

__all__ = ["WATCH", "AccessService", "Grant", "TokenError", "parse_token", "sign_token"]

"""The `sluice` command's API commands (login, pipelines, run, runs, backfill, alerts), on the SDK.

Exit codes, for scripts (also in docs/sdk.md):
  0  done (a waited run succeeded)
  1  a waited run ended failed or cancelled, or the server refused the call for another reason
  2  bad input: wrong arguments, a file that is neither YAML nor JSON, a body the server found
     invalid (400, 413, 422)
  3  not found (404)
  4  not authenticated or not allowed (401, 403): check the key and its role
  5  no Sluice answered at the URL, or it failed (5xx after retries)
  6  timed out waiting for the run (it goes on)
  7  conflict (409): a name taken, or a state change the run does not allow
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_CONFLICT = 7

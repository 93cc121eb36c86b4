"""The ``hub`` command: run the hub or one of its processes, and administer it.

One module per command group; importing them attaches their commands to ``main``.
"""

import warnings

# authlib 1.9 announces on import that it wants the httpx2 package in place of httpx. The hub
# is built on httpx; the line would tell an operator nothing they could act on. authlib puts
# an "always" filter for its warnings first when its module loads, so ours goes in after it.
import authlib.deprecate  # noqa: F401 - loaded for its filter, see above

warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=DeprecationWarning
)

from hub.audit.commands import audit  # noqa: E402
from hub.cli import (  # noqa: E402, F401 - each import registers its commands
    clients,
    consent,
    deadletters,
    deadlines,
    keys,
    partners,
    people,
    policy,
    run,
    staff,
)
from hub.cli.root import database_problem, main  # noqa: E402

main.add_command(audit)

__all__ = ["database_problem", "main"]

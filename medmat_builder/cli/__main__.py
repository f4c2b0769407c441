"""``python -m medmat_builder.cli``: the ``medmat`` command."""

import sys

from medmat_builder.cli.main import main

sys.exit(main())

import sys

from bayespinn.cli import main

sys.exit(main())

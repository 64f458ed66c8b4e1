import sys

from damonx.cli import main

sys.exit(main())

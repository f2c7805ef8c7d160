import sys

from autolabel.app.cli import main

sys.exit(main())

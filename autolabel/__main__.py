import sys

from autolabel.cli import main

sys.exit(main())

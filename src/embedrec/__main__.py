import sys

from embedrec.cli import main

sys.exit(main())

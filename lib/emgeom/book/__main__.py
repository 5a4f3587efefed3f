import sys

from emgeom.book.cli import main

sys.exit(main())

"""``python -m lic_teach.grading folder/``: the instructor's command line
(:func:`lic_teach.grading.cli.main`); with ``--execute``, the child process in which
:func:`lic_teach.grading.kernel.run_in_kernel` runs one notebook; with ``--judge``, the
clean process that runs its tests (:mod:`lic_teach.grading.judge`)."""

import json
import sys
from pathlib import Path

from .cli import main
from .kernel import execute
from .limits import Limits

if len(sys.argv) == 3 and sys.argv[1] == "--judge":
    from .judge import main as judge

    sys.exit(judge(sys.argv[2]))
elif len(sys.argv) == 5 and sys.argv[1] == "--execute":
    execute(Path(sys.argv[2]), int(sys.argv[3]), Limits(**json.loads(sys.argv[4])))
else:
    sys.exit(main())

# Setup. On Colab: install lic_teach and CompressAI 1.2.8, keeping Colab's numpy, torch
# and other packages, so no restart is needed (see lic_teach.colab). Elsewhere: nothing.
import importlib
import importlib.util
import os
import subprocess
import sys

LIC_TEACH_REPO = os.environ.get(
    "LIC_TEACH_REPO", "https://github.com/lic-teach/lic-teach"
)
if "google.colab" in sys.modules and importlib.util.find_spec("compressai") is None:
    print(f"Installing lic_teach from {LIC_TEACH_REPO}...", flush=True)
    if subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            f"lic_teach @ git+{LIC_TEACH_REPO}",
        ]
    ).returncode:
        raise RuntimeError(
            "Could not install lic_teach (see pip's message above). Is the runtime "
            "online? Then: Runtime > Disconnect and delete runtime, and run all again."
        )
    importlib.invalidate_caches()
    import lic_teach.colab

    lic_teach.colab.install()

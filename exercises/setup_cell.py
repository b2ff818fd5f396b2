# Setup. On Colab this installs lic_teach with otter-grader; elsewhere it does nothing.
import importlib.util, os, subprocess, sys

LIC_TEACH_REPO = "https://github.com/lic-teach/lic-teach"
if "google.colab" in sys.modules and importlib.util.find_spec("otter") is None:
    print(f"Installing lic_teach, CompressAI and otter-grader from {LIC_TEACH_REPO} (a minute or two)...")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    f"lic_teach[exercises] @ git+{LIC_TEACH_REPO}"], check=True)
    import numpy
    if int(numpy.__version__.split(".")[0]) >= 2:
        print(f"CompressAI needs numpy < 2, which is now installed, but this runtime still has "
              f"numpy {numpy.__version__} loaded.\nThe runtime restarts now to load the new one. "
              f"When it has reconnected, choose Runtime > Run all again: this cell then skips "
              f"the install.")
        os.kill(os.getpid(), 9)

"""Execute a notebook as Colab would, in a kernel where ``google.colab`` is imported:
``python execute.py NOTEBOOK [SETUP_CELL_FILE]`` (with a setup file: run only that cell,
in the notebook's folder). Prints, as its last line, the JSON
``{"seconds": [per cell], "text": "all printed output", "widget_manager": bool}``.
Run by tests/test_colab_environment.py with the Colab-like environment's Python."""

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

STUB = Path(__file__).resolve().parent


def main(path, setup=None):
    notebook = nbformat.read(path, as_version=4)
    if setup is not None:
        notebook.cells = [nbformat.v4.new_code_cell(Path(setup).read_text())]
    new = nbformat.v4.new_code_cell
    notebook.cells = (
        [new(f"import sys; sys.path.insert(0, {str(STUB)!r}); import google.colab")]
        + notebook.cells
        + [
            new(
                "from google.colab import output\n"
                "print('WIDGET_MANAGER', output.custom_widget_manager_enabled)"
            )
        ]
    )
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    seconds = []
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            start = time.perf_counter()
            client.execute_cell(cell, index)
            seconds.append(time.perf_counter() - start)
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in notebook.cells
        for o in c.get("outputs", [])
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "text": text,
                "widget_manager": "WIDGET_MANAGER True" in text,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])

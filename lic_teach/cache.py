"""The cache of trained models: train once, reuse while nothing that shaped them
changed.

A chapter's models are trained by a *recipe* (a function that returns ``{lambda:
model}`` and their training histories). The cache file's name is a hash of the recipe's
settings (everything that shapes the result: steps, lambdas, a name for the data, the
starting weights), of the model's class and hyper-parameters, and of the source of
exactly the ``lic_teach`` modules the recipe and the model run: those that define them
and every module they import, followed through the package. Editing a plot, a quiz or
the grader therefore keeps the cache; editing the model, the loss or the training loop
retrains.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

HASH_LENGTH = 12
"""Hex digits kept of every SHA-256 in the package's keys (48 bits: a collision among
a cache's few thousand entries has odds of about one in 10^8)."""


def settings_hash(settings) -> str:
    """The one key of a set of settings: SHA-256 of their JSON with sorted keys (values
    JSON cannot hold are written as ``str``), cut to :data:`HASH_LENGTH` digits. The
    zoo's manifests and the studies' records store it to say which settings made them.
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def atomic_write(path, content) -> Path:
    """Write ``path`` whole or not at all: ``content`` (``bytes``, ``str``, or a
    function that writes to the binary file it is given) goes to a temporary file of a
    name unique to this call in the same folder, which then replaces ``path`` in one
    rename; on any error the temporary file is removed and the error raised. Returns
    ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
    )
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # as open() would make it, not 0600
        with os.fdopen(handle, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode() if isinstance(content, str) else content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_cache_dir() -> Path:
    """``$LIC_TEACH_CACHE``, else ``~/.cache/lic_teach``: where chapters keep trained
    models."""
    return Path(
        os.environ.get("LIC_TEACH_CACHE") or Path.home() / ".cache" / "lic_teach"
    )


def family(make_model, settings: dict, lambdas, train_one, cache_dir, device="cpu"):
    """The usual recipe, cached: ``{lambda: model}`` (eval mode) and ``{label:
    history}`` with, for each lambda in order, ``train_one(lmbda) -> (model, {label:
    history})``; plus whether they came from the cache (:func:`load_or_train`, keyed by
    ``settings`` and by the source of ``train_one``'s module)."""
    lambdas = list(lambdas)

    def train_all():
        models, histories = {}, {}
        for lmbda in lambdas:
            model, more = train_one(lmbda)
            models[lmbda] = model.eval()
            histories.update(more)
        return models, histories

    return load_or_train(
        make_model,
        dict(settings, lambdas=lambdas),
        train_all,
        cache_dir,
        device,
        recipe_module=train_one.__module__,
    )


def load_or_train(
    make_model, settings: dict, train_all, cache_dir, device="cpu", recipe_module=None
):
    """``train_all()``'s ``(models, histories)`` (``models``: ``{lambda: model}``), or
    the same from ``cache_dir`` when the same recipe was trained before with the same
    ``settings`` (JSON, with ``lambdas``) and source (see the module docstring; the
    recipe's module is ``train_all``'s unless ``recipe_module`` names it); plus whether
    they came from the cache. ``cache_dir=None`` always trains; a damaged file is
    trained anew."""
    probe = make_model()
    settings = dict(
        settings,
        device=torch.device(device).type,  # CUDA's kernels may round otherwise
        model=type(probe).__name__,
        params=list(getattr(probe, "hyperparameters", tuple)()),
        source=source_fingerprint(
            type(probe).__module__, recipe_module or train_all.__module__
        ),
    )
    path = _cache_path(cache_dir, settings)
    if path is not None and path.is_file():
        try:
            models, histories = _load(path, make_model, settings["lambdas"], device)
            return models, histories, True
        except Exception as error:  # damaged file: train again
            warnings.warn(
                f"ignoring the unreadable cache file {path} ({error}); training again",
                stacklevel=2,
            )
    models, histories = train_all()
    if path is not None:
        # CPU tensors: a file written by a GPU run loads anywhere
        states = [
            {k: v.detach().cpu() for k, v in m.state_dict().items()}
            for m in models.values()
        ]
        atomic_write(
            path, lambda f: torch.save({"states": states, "histories": histories}, f)
        )
    return models, histories, False


def _load(path: Path, make_model, lambdas, device):
    saved = torch.load(path, map_location="cpu", weights_only=True)
    models = {}
    for lmbda, state in zip(lambdas, saved["states"], strict=True):
        model = make_model()
        model.load_state_dict(state)
        models[lmbda] = model.to(device).eval()
    return models, saved["histories"]


def _cache_path(cache_dir, settings: dict) -> Path | None:
    if cache_dir is None:
        return None
    return (
        Path(cache_dir)
        / "trained"
        / f"{settings['model']}-{settings_hash(settings)}.pt"
    )


def tensors_fingerprint(state: dict) -> str:
    """A short hash of named tensors (for a recipe's settings: starting weights,
    latents)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:HASH_LENGTH]


def source_fingerprint(*modules: str) -> str:
    """A short hash of the source of the named ``lic_teach`` modules and of every
    ``lic_teach`` module they import (at any depth of their code)."""
    digest = hashlib.sha256()
    for name in sorted(set().union(*(_import_closure(m) for m in modules))):
        digest.update(name.encode())
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()[:HASH_LENGTH]


def function_fingerprint(function) -> str:
    """A short hash of the code ``function`` runs: :func:`source_fingerprint` of its
    module where that is part of ``lic_teach``; else (a function defined in a
    notebook, say) of its own source text. ``ValueError`` where that text cannot be
    read (a cache key that does not change with the code would reuse stale models)."""
    module = getattr(function, "__module__", "") or ""
    if _is_lic_teach_module(module):
        return source_fingerprint(module)
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError) as error:
        raise ValueError(
            f"cannot read the source of {function!r} to key the cache by it; "
            "define it in a module or a notebook cell"
        ) from error
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


@functools.cache
def _import_closure(module: str) -> frozenset:
    """``module`` and the ``lic_teach`` modules it imports, followed transitively."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or not _is_lic_teach_module(name):
            continue
        seen.add(name)
        todo.extend(_imports_of(name))
    return frozenset(seen)


def _is_lic_teach_module(name: str) -> bool:
    if name != "lic_teach" and not name.startswith("lic_teach."):
        return False
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a name imported from a module, not a module
        return False
    return spec is not None and spec.origin is not None and spec.origin.endswith(".py")


def _imports_of(name: str) -> list[str]:
    """The modules a ``lic_teach`` module's code names in ``import`` statements."""
    path = Path(importlib.util.find_spec(name).origin)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                importlib.util.resolve_name(
                    "." * node.level + (node.module or ""), package
                )
                if node.level
                else node.module
            )
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return found

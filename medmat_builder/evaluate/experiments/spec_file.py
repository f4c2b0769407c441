"""An experiment spec read from a YAML file: placeholders, ``--set`` overrides, paths.

Three things happen between the file and :class:`~.spec.ExperimentSpec`, in this order
(:func:`load_spec`):

1. **Placeholders.** ``${NAME}`` and ``${NAME:-default}`` in any string are filled from
   ``--set NAME=VALUE``, else from the environment variable ``NAME``, else from the default; a
   placeholder with neither is an error that names it. A value that is a whole placeholder is read
   as YAML (``${EPOCHS:-5}`` gives the number 5).
2. **Field overrides.** ``--set field.sub=VALUE`` (lower-case, dotted) replaces a field after
   parsing, e.g. ``--set backbone=llava-hf/llava-1.5-7b-hf`` or ``--set eval.limit=50``.
3. **Paths.** Relative paths written in the spec file are relative to the spec file, as in most
   tools; paths given on the command line (``--set``) or through environment variables are relative
   to the working folder, as any command-line path. The path fields are listed in
   :data:`PATH_FIELDS` / :data:`MODEL_FIELDS`; after loading they are absolute. A model or dataset
   field that does not look like a path (``./x``, ``../x``, ``/x``, ``~``) and does not exist is a
   Hub id and is kept as written.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medmat_builder.evaluate.experiments.spec import ExperimentSpec, SpecError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Fields that always hold a local path (resolved against the spec file or the working folder).
PATH_FIELDS: tuple[str, ...] = ("recipe", "accelerate_config", "eval_accelerate_config", "output_dir")
#: Fields that hold a local path *or* a Hub id.
MODEL_FIELDS: tuple[str, ...] = ("backbone", "dataset")
#: Per-arm fields: ``checkpoint`` (path or Hub id), ``mixture`` (a file when it ends in .yaml/.yml
#: or holds a '/'), and the sft argument ``general_mcq_dataset`` inside ``train_args`` (path or Hub id).
ARM_MODEL_FIELDS: tuple[str, ...] = ("checkpoint",)
TRAIN_ARG_MODEL_FIELDS: tuple[str, ...] = ("general_mcq_dataset",)


@dataclass
class _Filled:
    data: Any
    from_cli: set[tuple] = field(default_factory=set)  # key paths whose value came from --set / the environment


def placeholders(data: Any) -> dict[str, str | None]:
    """Every ``${NAME[:-default]}`` in a parsed spec: name -> default (None when there is none)."""
    found: dict[str, str | None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for m in PLACEHOLDER.finditer(node):
                found.setdefault(m.group(1), m.group(2))

    walk(data)
    return found


def fill_placeholders(data: Any, values: Mapping[str, str], origin: str = "spec") -> _Filled:
    """Replace placeholders in every string of ``data``; ``values`` are --set values and the environment."""
    missing: set[str] = set()
    from_cli: set[tuple] = set()

    def one(text: str, path: tuple) -> Any:
        whole = PLACEHOLDER.fullmatch(text.strip())

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in values:
                if m.start() == 0:
                    from_cli.add(path)
                return str(values[name])
            if default is not None:
                return default
            missing.add(name)
            return m.group(0)

        out = PLACEHOLDER.sub(sub, text)
        if whole and not missing:
            parsed = _scalar(out)
            return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else out
        return out

    def walk(node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return one(node, path)
        return node

    out = walk(data, ())
    if missing:
        names = sorted(missing)
        raise SpecError(
            f"{origin}: fill the placeholder(s) {', '.join('${' + n + '}' for n in names)}: "
            + " ".join(f"--set {n}=..." for n in names) + " (or set the environment variable"
            + ("s" if len(names) > 1 else "") + ")"
        )
    return _Filled(out, from_cli)


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], origin: str = "spec") -> set[tuple]:
    """Set dotted fields (``eval.limit``) in ``data``; returns the key paths set."""
    paths: set[tuple] = set()
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = data
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise SpecError(f"{origin}: --set {key}: {part!r} is not a mapping in the spec")
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"{origin}: --set {key}: cannot set a field inside a non-mapping")
        node[parts[-1]] = value
        paths.add(tuple(parts))
    return paths


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..")


def _resolve_path(value: str, base: Path) -> str:
    return str((base / Path(value).expanduser()).resolve())


def _resolve_model(value: str, base: Path) -> str:
    """A local path (made absolute) or a Hub id (kept)."""
    if looks_like_path(value) or (base / value).exists():
        return _resolve_path(value, base)
    return value


def _is_mixture_file(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def resolve_paths(data: dict[str, Any], spec_dir: Path, from_cli: set[tuple], cwd: Path) -> dict[str, Any]:
    """Make every path field absolute: against ``cwd`` for command-line values, else ``spec_dir``."""
    data = copy.deepcopy(data)

    def base(path: tuple) -> Path:
        return cwd if path in from_cli else spec_dir

    for key in PATH_FIELDS:
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve_path(data[key], base((key,)))
    for key in MODEL_FIELDS:
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve_model(data[key], base((key,)))

    def arm(node: Any, path: tuple) -> None:
        if not isinstance(node, dict):
            return
        for key in ARM_MODEL_FIELDS:
            if isinstance(node.get(key), str):
                node[key] = _resolve_model(node[key], base((*path, key)))
        mix = node.get("mixture")
        if isinstance(mix, str) and _is_mixture_file(mix):
            node["mixture"] = _resolve_path(mix, base((*path, "mixture")))
        _train_args(node.get("train_args"), (*path, "train_args"))

    def _train_args(node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for key in TRAIN_ARG_MODEL_FIELDS:
                if isinstance(node.get(key), str):
                    node[key] = _resolve_model(node[key], base((*path, key)))

    _train_args(data.get("train_args"), ("train_args",))
    for name, node in (data.get("arms") or {}).items():
        arm(node, ("arms", name))
    for i, vol in enumerate(data.get("volume") or []):
        if isinstance(vol, dict):
            for name, node in (vol.get("series") or {}).items():
                arm(node, ("volume", i, "series", name))
    return data


def parse_sets(items: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """``--set`` items -> (placeholder values, field overrides). Upper-case names fill placeholders;
    lower-case, possibly dotted names set fields (the value is read as YAML)."""
    values: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"--set {item!r}: expected NAME=VALUE (placeholder) or field.sub=VALUE (field)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise SpecError(f"--set {item!r}: the name before '=' is empty")
        if key.isupper() and "." not in key:
            values[key] = value
        else:
            fields[key] = _scalar(value)
    return values, fields


def _scalar(text: str) -> Any:
    """A command-line value read as YAML (``5`` -> 5, ``true`` -> True, empty -> None), else the text."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_spec(
    path: str | Path,
    sets: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ExperimentSpec:
    """Read, fill and validate a spec file (see the module docstring for placeholders and paths)."""
    path = Path(path)
    cwd = Path(cwd or os.getcwd()).resolve()
    spec_path = (cwd / path).resolve()
    try:
        data = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file (shipped specs are in eval/specs/)") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: an experiment spec is a YAML mapping (dataset, targets or rows, arms)")
    values, fields = parse_sets(sets)
    declared = placeholders(data)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        listed = ", ".join(sorted(declared)) or "none"
        raise SpecError(f"{path}: --set {', '.join(unknown)}: the spec has no such placeholder "
                        f"(its placeholders: {listed}); set a field with a lower-case name, e.g. --set backbone=...")
    env = dict(os.environ if environ is None else environ)
    filled = fill_placeholders(data, {**{k: env[k] for k in declared if k in env}, **values}, origin=str(path))
    data = filled.data
    from_cli = filled.from_cli | apply_overrides(data, fields, origin=str(path))
    data = resolve_paths(data, spec_path.parent, from_cli, cwd)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValueError as err:
        raise SpecError(f"{path}: not a valid experiment spec:\n{err}") from None
    spec._source = spec_path
    return spec


def dump_spec(spec: ExperimentSpec) -> str:
    """The filled, resolved spec as YAML (what a run or an export records as OUT/spec.yaml)."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True,
                          width=110)

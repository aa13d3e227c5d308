"""`llem config migrate`: a LLenergyMeasure v0.8 study or experiment file rewritten as ours.

The file is edited in place in ruamel's round-trip form, so comments and key order stay where
they can: keys are renamed (`config.peer.RENAMED`, `PREFIXES`), moved (`vllm.engine.x` ->
`vllm.x`, `vllm.sampling.max_tokens` -> `max_new_tokens`), and removed when they have no
counterpart; each removal is reported with its line and the reason. A key our schema does not
know after renaming is removed and reported too, so the output validates whenever nothing is
reported. A single experiment becomes a study of one configuration.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from llenergymeasure.config.messages import walk_schema
from llenergymeasure.config.peer import our_name, unmapped_reason
from llenergymeasure.config.source import check_flow_nesting, nesting_line, too_deep
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.contract.config import BACKENDS, ExperimentConfig
from llenergymeasure.errors import UserError

# The peer's study-level keys, and what each is here (None: handled apart or dropped).
STUDY_KEYS = {"name", "sweep", "experiments", "execution", "base", "runners", "output_dir"}
PRESETS = {"deterministic": {"temperature": 0.0}}  # decoder.preset values we can write out


@dataclass
class Migration:
    """The rewritten document and what could not be carried over: (line, path, reason)."""

    text: str
    unmapped: list[tuple[int, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def migrate(path: Path) -> Migration:
    """Rewrite the LLenergyMeasure v0.8 file at `path`; UserError if it is not a study or an
    experiment at all."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        text = path.read_text(encoding="utf-8")
        check_flow_nesting(text, str(path))
        document = yaml.load(text)
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    except UserError:
        raise
    except RecursionError:
        raise too_deep(str(path), nesting_line(text)) from None
    except Exception as error:  # ruamel's parse errors have no common public base
        raise UserError(f"{path}: not YAML ({' '.join(str(error).split())[:200]})") from None
    if not isinstance(document, CommentedMap) or not (
        {"model", "sweep", "experiments", "base"} & set(document)
    ):
        raise UserError(
            f"{path}: not a LLenergyMeasure study or experiment file (no model, sweep, "
            "experiments or base at its top level)",
            hint="give the study or experiment YAML file",
        )
    job = _Migrator(path)
    job.study(document)
    out = io.StringIO()
    yaml.dump(document, out)
    return Migration(out.getvalue(), sorted(job.unmapped), job.notes)


class _Migrator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.unmapped: list[tuple[int, str, str]] = []
        self.notes: list[str] = []
        self.moves: list[tuple[CommentedMap, str, Any]] = []

    def drop(self, node: CommentedMap, key: str, shown: str, reason: str) -> None:
        self.unmapped.append((_line(node, key), shown, reason))
        del node[key]

    def study(self, doc: CommentedMap) -> None:
        if "name" not in doc:
            name = doc.pop("config_name", None) or self.path.stem
            doc.insert(0, "name", name)
        elif "config_name" in doc:
            self.drop(doc, "config_name", "config_name", "the study is named by name")
        if "runners" in doc:
            self.runners(doc)
        if "execution" in doc:
            self.execution(doc["execution"])
        if "sweep" in doc:
            doc["sweep"] = self.sweep(doc, doc["sweep"], "sweep")
        for index, entry in enumerate(doc.get("experiments") or []):
            if isinstance(entry, CommentedMap):
                self.experiment(entry, f"experiments[{index}]")
        self.experiment(doc, "", study_level=True)
        if not _sets_temperature(doc):
            self.notes.append(
                "LLenergyMeasure v0.8 samples by default (temperature 1.0, top_k 50); this tool "
                "decodes greedily unless told: add decoding: {temperature: 1.0, top_k: 50} to "
                "keep v0.8's sampling"
            )

    def runners(self, doc: CommentedMap) -> None:
        """`runners: {vllm: "docker:IMAGE"}` names an image; local/docker need nothing here."""
        runners = doc["runners"]
        images = {}
        if isinstance(runners, dict):
            for backend, value in runners.items():
                if isinstance(value, str) and value.startswith("docker:") and backend in BACKENDS:
                    images[backend] = value.removeprefix("docker:")
        self.drop(doc, "runners", "runners", unmapped_reason("runners") or "")
        if images:
            doc["images"] = images
            self.notes.append(f"runners' images kept under images: {images}")

    def execution(self, execution: Any) -> None:
        if not isinstance(execution, CommentedMap):
            return
        for key in list(execution):
            path = f"execution.{key}"
            name = our_name(path)
            if name is not None:
                _rename(execution, key, name.removeprefix("execution."))
            elif key not in ExecutionConfig.model_fields:
                reason = unmapped_reason(path) or "not an execution key here"
                self.drop(execution, key, path, reason)

    def sweep(self, doc: CommentedMap, sweep: Any, shown: str) -> Any:
        """Dotted keys, renamed; a dimension with no counterpart is dropped."""
        if not isinstance(sweep, dict):
            return sweep
        flat = CommentedMap()
        for key, values in _flatten(sweep):
            name = our_name(key) or key
            reason = unmapped_reason(key) if our_name(key) is None else None
            if reason is None and not _known(name):
                reason = "no such key here"
            if reason is not None:
                self.unmapped.append((_line(doc, "sweep"), f"{shown}.{key}", reason))
                continue
            flat[name] = values
        return flat

    def experiment(self, node: CommentedMap, prefix: str, study_level: bool = False) -> None:
        """Rename, move and drop the experiment keys of `node` (a study's top level or an
        experiments entry)."""
        self.vllm_sections(node, prefix)
        self.decoder(node, prefix)
        for key in list(node):
            if study_level and key in STUDY_KEYS | {"images"}:
                continue
            if prefix and key == "sweep":
                node["sweep"] = self.sweep(node, node["sweep"], f"{prefix}.sweep")
                continue
            self.key(node, node, key, prefix, key, "")
        for root, name, value in self.moves:
            _set_path(root, name, value)
        self.moves.clear()

    def key(
        self, root: CommentedMap, node: CommentedMap, key: str, prefix: str, peer: str, ours: str
    ) -> None:
        """One key of an experiment: `peer` is its path in the old file, `ours` where its
        parent now is in ours (dotted, from the experiment's root)."""
        shown = _join(prefix, peer)
        value = node[key]
        if value is None:
            self.drop(node, key, shown, "null (the default) left out")
            return
        name = our_name(peer) or _join(ours, key)
        reason = unmapped_reason(peer) if our_name(peer) is None else None
        if reason is None and not _known(name):
            reason = "no such key here"
        if reason is not None:
            self.drop(node, key, shown, reason)
            return
        if name != _join(ours, key):  # renamed: in place (position and comment kept), or moved
            parent, _, last = name.rpartition(".")
            if parent == ours:
                _rename(node, key, last)
            else:  # moved once every key is renamed, so it lands in the renamed section
                del node[key]
                self.moves.append((root, name, value))
        if isinstance(value, CommentedMap) and _models_at(name):
            for inner in list(value):
                self.key(root, value, inner, prefix, f"{peer}.{inner}", name)

    def vllm_sections(self, node: CommentedMap, prefix: str) -> None:
        """`vllm: {engine: {...}, sampling: {max_tokens}}` -> `vllm: {...}`, `max_new_tokens`."""
        vllm = node.get("vllm")
        if not isinstance(vllm, CommentedMap):
            return
        engine = vllm.get("engine")
        if isinstance(engine, CommentedMap):
            for key in list(engine):  # judged here, where the old file's lines are
                peer = f"vllm.engine.{key}"
                if engine[key] is not None and not _known(f"vllm.{key}"):
                    reason = unmapped_reason(peer) or "no such key here"
                    self.drop(engine, key, _join(prefix, peer), reason)
            position = list(vllm).index("engine")
            for offset, (key, value) in enumerate(engine.items()):
                vllm.insert(position + offset, key, value)
            del vllm["engine"]
        sampling = vllm.get("sampling")
        if isinstance(sampling, CommentedMap):
            if "max_tokens" in sampling:
                node["max_new_tokens"] = sampling.pop("max_tokens")
            if "ignore_eos" in sampling:
                node["fixed_output_length"] = sampling.pop("ignore_eos")
            for key in list(sampling):
                self.drop(sampling, key, _join(prefix, f"vllm.sampling.{key}"), "not supported")
            del vllm["sampling"]

    def decoder(self, node: CommentedMap, prefix: str) -> None:
        """`decoder:` -> `decoding:`; a preset we can write out becomes its values."""
        decoder = node.get("decoder")
        if not isinstance(decoder, CommentedMap):
            return
        preset = decoder.get("preset")
        if isinstance(preset, str) and preset in PRESETS:
            del decoder["preset"]
            for key, value in PRESETS[preset].items():
                decoder.setdefault(key, value)
        if "do_sample" in decoder and decoder.get("temperature") == 0:
            del decoder["do_sample"]  # greedy either way


def _sets_temperature(doc: CommentedMap) -> bool:
    """Whether the migrated study sets the decoding temperature anywhere."""
    places = [doc, *(e for e in doc.get("experiments") or [] if isinstance(e, dict))]
    for place in places:
        decoding = place.get("decoding")
        if isinstance(decoding, dict) and "temperature" in decoding:
            return True
        sweeps = [place.get("sweep")] if place.get("sweep") else []
        if any("decoding.temperature" in sweep for sweep in sweeps if isinstance(sweep, dict)):
            return True
    return False


def _line(node: CommentedMap, key: str) -> int:
    """The key's line in the old file; 0 for a key moved there (it has none of its own)."""
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError):
        return 0


def _rename(node: CommentedMap, old: str, new: str) -> str:
    """Rename a key in place (its position and comment kept)."""
    if old == new:
        return new
    position = list(node).index(old)
    comment = node.ca.items.pop(old, None)
    value = node.pop(old)
    node.insert(position, new, value)
    if comment is not None:
        node.ca.items[new] = comment
    return new


def _set_path(root: CommentedMap, dotted: str, value: Any) -> None:
    node = root
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), CommentedMap):
            node[part] = CommentedMap()
        node = node[part]
    node[last] = value


def _flatten(sweep: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in sweep.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{dotted}."))
        else:
            items.append((dotted, value))
    return items


def _models_at(dotted: str) -> list[type[BaseModel]]:
    return walk_schema(ExperimentConfig, dotted.split(".")).models


def _known(dotted: str) -> bool:
    """Whether our experiment schema has this dotted path (below a plain mapping: yes)."""
    return walk_schema(ExperimentConfig, dotted.split(".")).unknown_at is None


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path

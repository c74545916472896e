"""Build a scenario from the packaged hydra tree, without a command line.

Used by :func:`simulator.run`, notebooks and tests. Hydra's global state is
entered and left inside each call, so compositions never leak into each
other.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable
from typing import Any, cast, get_args, get_origin, get_type_hints

from omegaconf import Container, DictConfig, ListConfig, Node, OmegaConf, open_dict, read_write

from simulator.config.schema import ScenarioConfig, register, schema_node
from simulator.errors import ConfigError

CONFIG_MODULE = "simulator.scenarios"


def compose(overrides: Iterable[str] | None = None) -> DictConfig:
    """Compose ``scenarios/config.yaml`` with hydra ``overrides`` (e.g. ``["workload.rate=4"]``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    overrides = list(overrides or [])
    if GlobalHydra.instance().is_initialized():  # e.g. called from inside a hydra app
        return _wrap(lambda: hydra_compose("config", overrides=overrides))
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return _wrap(lambda: hydra_compose("config", overrides=overrides))


def _wrap(fn):
    try:
        return fn()
    except ConfigError:
        raise
    except Exception as exc:  # hydra / omegaconf composition errors
        raise ConfigError(describe_hydra_error(exc)) from exc


def describe_hydra_error(exc: BaseException) -> str:
    """One sentence for a hydra / omegaconf composition error."""
    text = str(exc)
    if exc.__cause__ is not None and str(exc.__cause__) not in text:
        text += "\n" + str(exc.__cause__)
    full_key = re.search(r"full_key: (\S+)", text)

    mapping_error = _mapping_entry_error(text)
    if mapping_error is not None:
        return mapping_error

    missing = re.search(r"Could not find '([^']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text.split("Available options", 1)[-1], flags=re.M)
        allowed = f"; choose one of: {', '.join(options)}" if options else ""
        return f"{group}={option} is not a known {group}{allowed}."

    unknown = re.search(r"Key '([^']+)' not in '([^']+)'", text)
    if unknown and full_key:
        key = full_key.group(1)
        parent = key.rpartition(".")[0]
        return f"{key} is not a known key; {_keys_of(parent)}."

    bad_value = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)", text) or re.search(
        r"Value '([^']*)' is not a valid (\w+)", text
    )
    if bad_value and full_key:
        value, kind = bad_value.groups()
        return f"{full_key.group(1)}={value!r} is invalid; it must be {_ARTICLE.get(kind, kind)}."

    group = re.search(r"Invalid type assigned: \w+ is not a subclass of (\w+)\. value: (.*)", text)
    if group and full_key:
        key = full_key.group(1)
        return f"{key}={group.group(2).strip()!r} is invalid: {key} is a group of settings; set its keys one by one ({_keys_of(key)})."

    not_list = re.search(r"Invalid value assigned: \w+ is not a ListConfig, list or tuple", text)
    if not_list and full_key:
        key = full_key.group(1)
        given = re.search(r"^Error merging override \+*[\w.\-]+=(.*)$", text, flags=re.M)
        value = given.group(1).strip() if given else "..."
        return f"{key}={value} is invalid: {key} is a list; write it in brackets, quoted for the shell, e.g. '{key}=[{value}]'."

    if re.search(r"field '[\w.\-]+' is not Optional", text) and full_key:
        key = full_key.group(1)
        empty = " (an empty list is '[]')" if _is_list(key) else ""
        return f"{key}=null is invalid: {key} needs a value{empty}."

    bad_enum = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", text)
    if bad_enum and full_key:
        return f"{full_key.group(1)}={bad_enum.group(1)!r} is invalid; choose one of: {bad_enum.group(2)}."

    keep = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.strip().startswith(("reference_type", "object_type", "Config search path", "provider=", "Set the environment"))
    ]
    return " ".join(keep)


def _is_list(path: str) -> bool:
    """Whether a dotted key of the schema is a list."""
    kind: Any = ScenarioConfig
    for part in path.split("."):
        if not dataclasses.is_dataclass(kind):
            return False
        kind = get_type_hints(kind).get(part)
    return get_origin(kind) is list


def _mapping_entry_error(text: str) -> str | None:
    """The sentence for setting a name -> settings mapping (``pricing.hardware``, ``cluster.groups``) or an
    entry of it that the composed config does not have yet, which hydra can only add whole; None otherwise."""
    if "is not in struct" not in text and "Invalid type assigned" not in text:
        return None
    override = re.search(r"(?:Error merging override|Could not override) '?\+*([\w.\-]+)", text)
    found = _mapping_entry(override.group(1)) if override else None
    if found is None:
        return None
    mapping, name, rest, keys = found
    given = re.search(r"^(?:Error merging override|To append to your config use) \+*[\w.\-]+=(.*)$", text, flags=re.M)
    value = given.group(1).strip() if given and given.group(1).strip() else "..."
    listed = f"the keys of an entry are: {', '.join(keys)}"
    if name is None:  # the whole mapping: merged into the snapshot's entries only with ++
        return f"{mapping}={value} adds entries: write it '++{mapping}={value}' (two +: merged into the entries {mapping} has) ({listed})."
    if rest:
        if rest.split(".")[0] not in keys:
            return f"{mapping}.{name}.{rest} is not a known key; {listed}."
        inner = value
        for part in reversed(rest.split(".")):
            inner = f"{{{part}: {inner}}}"
    elif value.startswith("{"):
        inner = value
    else:  # an entry is a group of settings, not one value
        return (
            f"{mapping}.{name}={value} is invalid: an entry of {mapping} is a group of settings; add it whole, e.g. "
            f"'++{mapping}={{{name}: {{{keys[0]}: ...}}}}' ({listed})."
        )
    what = "to set a key of: add the entry whole" if rest else "yet: add it"
    return f"{mapping} has no entry {name!r} {what}, e.g. '++{mapping}={{{name}: {inner}}}' ({listed})."


def _mapping_entry(path: str) -> tuple[str, str | None, str, list[str]] | None:
    """For a dotted key that is a name -> settings mapping of the schema (``pricing.hardware``) or lies inside
    one (``pricing.hardware.mi300x.spot``): (the mapping's key, the entry's name or None, the rest of the
    key, the keys of an entry); else None."""
    kind: Any = ScenarioConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(kind):
            return None
        hint = get_type_hints(kind).get(part)
        if hint is None:
            return None
        if get_origin(hint) is dict:
            element = get_args(hint)[1]
            if not dataclasses.is_dataclass(element):
                return None
            keys = [f.name for f in dataclasses.fields(element)]
            name = parts[i + 1] if i + 1 < len(parts) else None
            return ".".join(parts[: i + 1]), name, ".".join(parts[i + 2 :]), keys
        kind = hint
    return None


_ARTICLE = {"Float": "a number", "Integer": "an integer", "Boolean": "true or false", "bool": "true or false", "String": "a string"}


def _keys_of(parent: str) -> str:
    node = OmegaConf.structured(ScenarioConfig)
    try:
        for part in filter(None, parent.split(".")):
            element = node._metadata.element_type
            if part not in node and node._metadata.object_type is dict and dataclasses.is_dataclass(element):
                node = OmegaConf.structured(element)  # an entry of a name -> settings mapping
            else:
                node = node[part]
        keys = list(node.keys())
    except Exception:
        return "see simulator/config/schema.py for the keys"
    where = parent or "the top level"
    return f"the keys of {where} are: {', '.join(keys)}"


def to_scenario(config: Any) -> ScenarioConfig:
    """Merge ``config`` (DictConfig, dict or ScenarioConfig) onto the schema and resolve it."""
    if isinstance(config, ScenarioConfig):
        return config
    typed = _already_merged(config)
    if typed is not None:
        return typed
    try:
        config = OmegaConf.create(config) if isinstance(config, dict) else config
        if isinstance(config, DictConfig) and "hydra" in config:
            config = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
        base = schema_node(ScenarioConfig)  # shared and only read: OmegaConf.merge copies it
        _unknown_keys(base, config, "")  # a key the schema lacks (e.g. +foo=1) is an error
        return cast(ScenarioConfig, OmegaConf.to_object(OmegaConf.merge(base, config)))  # merged onto the schema
    except Exception as exc:
        raise ConfigError(describe_hydra_error(exc)) from exc


def _already_merged(config: Any) -> ScenarioConfig | None:
    """``config`` resolved as it is, when hydra already merged it onto the schema (a composition,
    or the job's config under ``servesim``): merging it onto the schema again would change
    nothing and costs several times the conversion. None when the config is of another kind
    or anything fails; the merge then decides, and words any error."""
    if not isinstance(config, DictConfig) or OmegaConf.get_type(config) is not ScenarioConfig:
        return None
    try:
        if "hydra" in config:
            direct = _object_beside_hydra(config)
            if direct is not None:
                return direct
            config = copy.deepcopy(config)  # as hydra hands the job its config: a copy without the hydra node
            with read_write(config), open_dict(config):
                del config["hydra"]
        if _has_extra_key(config):  # (to_object would drop it silently)
            return None
        result = OmegaConf.to_object(config)
    except Exception:
        return None
    return result if type(result) is ScenarioConfig else None


def _object_beside_hydra(config: DictConfig) -> ScenarioConfig | None:
    """``OmegaConf.to_object`` of ``config`` without its hydra node, read in place (no copy) when
    nothing in it interpolates: a value like ``${hydra.job.name}`` would resolve here and not in
    the copy without the hydra node that hydra hands the job. None when it cannot be read so."""
    keys = [k for k in config.keys() if k != "hydra"]
    fields = {f.name for f in dataclasses.fields(ScenarioConfig) if f.init}
    if not set(keys) <= fields or not _plain(config, keys):
        return None
    values: dict[str, Any] = {}
    for key in keys:  # as DictConfig._to_object does, key by key
        node = config._get_node(key)
        if not isinstance(node, Node) or node._is_missing():
            return None
        values[str(key)] = OmegaConf.to_object(node) if isinstance(node, Container) else node._value()
    return ScenarioConfig(**values)


def _plain(node: Container, keys: Iterable[Any]) -> bool:
    """No value under ``node[k]`` (``k`` in ``keys``) interpolates, and no typed node holds a key
    its dataclass lacks (:func:`_has_extra_key`)."""
    for key in keys:
        child = node._get_node(key)
        if not isinstance(child, Node) or child._is_interpolation():
            return False
        if isinstance(child, Container) and not (child._is_none() or child._is_missing()):
            if isinstance(child, DictConfig):
                kind = child._metadata.object_type
                if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                    names = {f.name for f in dataclasses.fields(kind)}
                    if any(k not in names for k in child.keys()):
                        return False
                if not _plain(child, child.keys()):
                    return False
            elif isinstance(child, ListConfig) and not _plain(child, range(len(child))):
                return False
    return True


def _has_extra_key(node: DictConfig) -> bool:
    """A node of a typed config holds a key its dataclass lacks, at any depth: what
    :func:`_unknown_keys` reports, read off the config's own types instead of the schema's."""
    kind = OmegaConf.get_type(node)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        fields = {f.name for f in dataclasses.fields(kind)}
        if any(key not in fields for key in node.keys()):
            return True
    return any(isinstance(child := node._get_node(key), DictConfig) and _has_extra_key(child) for key in node.keys())


def _unknown_keys(schema, config, prefix: str) -> None:
    if not isinstance(config, DictConfig):
        return
    for key in config:
        if key not in schema.keys():  # ("in" would skip keys whose value is MISSING)
            parent = prefix.rstrip(".")
            raise ConfigError(f"{prefix}{key!s} is not a known key; {_keys_of(parent)}.")
        node = schema._get_node(key)
        if not isinstance(node, DictConfig):
            continue
        element = node._metadata.element_type
        if node._metadata.object_type is dict and dataclasses.is_dataclass(element):
            # a name -> settings mapping (tiers, cluster.groups): check each entry's keys
            entries = config._get_node(key)
            if isinstance(entries, DictConfig):
                for name in entries:
                    _unknown_keys(OmegaConf.structured(element), entries._get_node(name), f"{prefix}{key!s}.{name!s}.")
        elif node._metadata.object_type is dict:
            continue  # a name -> value mapping (response_cache.hit_rate_by_tenant): any name is a key
        else:
            _unknown_keys(schema[key], config._get_node(key), f"{prefix}{key!s}.")


def apply_overrides(config: Any, overrides: Iterable[str]) -> ScenarioConfig:
    """Apply ``key=value`` overrides to an existing config (no group switches)."""
    base = OmegaConf.structured(to_scenario(config))
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value.")
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
    except Exception as exc:
        raise ConfigError(describe_hydra_error(exc)) from exc
    return to_scenario(merged)

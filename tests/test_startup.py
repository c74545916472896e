"""Start-up: what ``import simulator`` and a plain ``servesim`` run load, and the shortcuts that
keep a small run quick (one composition, cached between runs; the schema built only to compose;
one validation; no garbage collection over start-up's objects) produce exactly what hydra's own
path produces. No timings here: these check what is imported, composed and validated, and the
bytes written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import simulator
from simulator.api import _exact, scenario_yaml
from simulator.config import cache, catalog
from simulator.config.schema import ScenarioConfig, TierConfig, WorkloadConfig, register

HEAVY = ("matplotlib", "scipy", "rich", "pandas", "pyarrow", "hydra", "omegaconf", "simpy")
SMALL = ["workload.num_requests=10", "output.charts=false", "output.console=false"]

#: runs ``servesim`` (simulator.cli.main) in this process, then prints, as JSON, how many times
#: hydra composed the config and which of HEAVY were imported. With "legacy" first it runs the
#: decorator's path (the preflight, then @hydra.main) instead.
_PROBE = """
import gc, json, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
composed = []
_load = ConfigLoaderImpl.load_configuration
def load_configuration(self, *a, **k):
    composed.append(1)
    return _load(self, *a, **k)
ConfigLoaderImpl.load_configuration = load_configuration
import simulator.api as api
checked = []
_load_config = api.load_config
def load_config(*a, **k):
    checked.append(1)
    return _load_config(*a, **k)
api.load_config = load_config
legacy = sys.argv[1] == "legacy"
sys.argv = ["servesim", *sys.argv[2:]]
import simulator.cli as cli
try:
    if legacy:
        cli._preflight(sys.argv[1:])
        cli._app()
    else:
        cli.main()
finally:
    from simulator.config.schema import schema_node
    print(json.dumps({
        "composed": len(composed),
        "checked": len(checked),
        "schema_built": schema_node.cache_info().misses,
        "gc": [gc.isenabled(), gc.get_freeze_count() > 0],
        "imported": [m for m in HEAVY if m in sys.modules],
    }))
""".replace("HEAVY", repr(HEAVY))


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SERVESIM_CACHE_DIR": str(tmp_path / "cache")}


def _probe(tmp_path: Path, *args: str, legacy: bool = False) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "legacy" if legacy else "main", *args],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    lines = proc.stdout.strip().splitlines()
    return proc, json.loads(lines[-1]) if lines else {}


def test_import_simulator_loads_nothing_heavy():
    code = (
        "import sys, simulator\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
        "from simulator.api import ARTIFACT_WRITERS\n"
        "print(len(ARTIFACT_WRITERS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", f"import simulator imported {out[0]}"
    assert out[1] == "1"  # the report layer's writers are registered all the same


def test_the_public_api_is_still_there():
    from simulator import ConfigError, Result, ServesimError, __version__, compose, load_config, run

    assert simulator.compose is compose and callable(run) and callable(load_config)
    assert isinstance(Result, type) and issubclass(ConfigError, ServesimError) and __version__
    assert set(simulator.__all__) <= set(dir(simulator)) | {"compose"}
    with pytest.raises(AttributeError):
        simulator.no_such_name  # noqa: B018


def test_a_plain_run_composes_once_then_not_at_all_and_loads_no_charts(tmp_path):
    args = [*SMALL, f"hydra.run.dir={tmp_path / 'run'}"]
    proc, cold = _probe(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert cold["composed"] == 1  # @hydra.main alone composes twice, and the preflight once more
    assert cold["schema_built"] == 1  # composing needs base_config
    assert not {"matplotlib", "rich", "scipy"} & set(cold["imported"]), cold["imported"]
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 1

    proc, warm = _probe(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert warm["composed"] == 0  # read back from the cache
    assert warm["schema_built"] == 0  # nothing composed: base_config is never built
    assert not {"matplotlib", "rich", "scipy"} & set(warm["imported"])


@pytest.mark.parametrize(
    "extra,checks",
    [
        ([], 1),  # checked before the run directory exists; the job runs what was checked
        (["hydra.job.chdir=true"], 2),  # the job runs elsewhere: relative paths may mean other files
        (["+hydra.job.env_set.SERVESIM_TEST=1"], 2),  # ... or with other environment variables
        (["+hydra.callbacks.log._target_=hydra.experimental.callbacks.LogJobReturnCallback"], 2),  # a callback of the user's
        (["workload.arrival=trace", "workload.trace.path=TRACE"], 2),  # the replay's length comes from hydra's node
    ],
)
def test_a_plain_run_validates_once_unless_the_job_could_see_another_scenario(tmp_path, extra, checks):
    trace = Path(__file__).resolve().parents[1] / "traces" / "sample_azure.csv"
    extra = [e.replace("TRACE", str(trace)) for e in extra]
    for _ in ("cold", "warm"):
        proc, probe = _probe(tmp_path, *SMALL, *extra, f"hydra.run.dir={tmp_path / 'run'}")
        assert proc.returncode == 0, proc.stderr
        assert probe["checked"] == checks
        assert (tmp_path / "run" / "summary.json").is_file()
        shutil.rmtree(tmp_path / "run")


def test_the_collector_runs_again_once_the_job_starts_or_start_up_fails(tmp_path):
    """main() holds cyclic garbage collection back during start-up, then freezes what start-up
    made and collects as usual; a run that fails before any job also leaves it on."""
    for args in ([*SMALL, f"hydra.run.dir={tmp_path / 'run'}"], [*SMALL, "workload.rate=-1"], ["-m", *SMALL, "workload.rate=4,8",
                                                                                              f"hydra.sweep.dir={tmp_path / 'sweep'}"]):
        proc, probe = _probe(tmp_path, *args)
        assert probe["gc"][0] is True, (args, proc.stderr)
    assert probe["gc"][1] is True  # the sweep's jobs ran in this process, after the freeze


def _run_dir_files(run: Path) -> dict[str, bytes]:
    names = [".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "scenario.yaml", "summary.json", "requests.parquet"]
    return {n: (run / n).read_bytes() for n in names}


@pytest.mark.parametrize("extra", [[], ["engine=vllm_v1", "hydra.job.chdir=true"]])
def test_the_shortcut_writes_what_the_decorator_writes(tmp_path, extra):
    """Cold cache, warm cache and @hydra.main's own path: the same run directory, byte for byte
    (hydra.yaml included: its overrides, choices, runtime and output_dir)."""
    run = tmp_path / "run"
    args = [*SMALL, *extra, f"hydra.run.dir={run}"]
    got = {}
    for how in ("legacy", "cold", "warm"):
        proc, probe = _probe(tmp_path, *args, legacy=how == "legacy")
        assert proc.returncode == 0, proc.stderr
        got[how] = (_run_dir_files(run), proc.stdout.splitlines()[:-1], proc.stderr)
        os.rename(run, tmp_path / how)
    assert probe["composed"] == 0
    assert got["cold"] == got["legacy"] and got["warm"] == got["legacy"]


def test_the_cached_config_leaves_the_run_directory_to_each_run(tmp_path, monkeypatch):
    """hydra.run.dir (outputs/${now:...}) is resolved by each run, not frozen in the cached config."""
    proc, _ = _probe(tmp_path, *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/.hydra/hydra.yaml"))) == 1
    (stored,) = (tmp_path / "cache").glob("*.pkl")
    monkeypatch.setenv("SERVESIM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = cache.load(stored.stem)
    assert cfg is not None and not OmegaConf.get_cache(cfg)  # composing had resolved ${now:}; none of it is kept
    assert OmegaConf.to_container(cfg.hydra.run)["dir"] == "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"


def test_mistakes_still_read_as_one_sentence_without_a_run_directory(tmp_path):
    for args, fragment in (
        (["hardware=tpu9"], "hardware=tpu9 is not a known hardware"),  # fails to compose: the decorator's path reports it
        (["workload.rate=-1"], "workload.rate must be a finite number > 0"),  # composes, fails validation
        (["workload.rate=4,8"], "Ambiguous value for argument"),  # a sweep without -m
    ):
        proc, _ = _probe(tmp_path, *SMALL, *args, f"hydra.run.dir={tmp_path / 'run'}")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("servesim: error: ") and fragment in proc.stderr, proc.stderr
        assert not (tmp_path / "run").exists()


def test_the_cache_key_follows_everything_a_composition_reads(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "config.yaml").write_text("a: 1\n")
    search = [("main", f"file://{tree}")]
    monkeypatch.chdir(tmp_path)
    key = cache.key("config", ["x=1"], "cli", search)
    assert key == cache.key("config", ["x=1"], "cli", search)
    assert key != cache.key("config", ["x=2"], "cli", search)
    assert key != cache.key("config", ["x=1"], "other", search)
    os.utime(tree / "config.yaml", ns=(1, 1))
    touched = cache.key("config", ["x=1"], "cli", search)
    assert touched != key
    (tree / "new.yaml").write_text("b: 2\n")
    assert cache.key("config", ["x=1"], "cli", search) != touched
    assert cache.key("config", ["x=1"], "cli", [*search, ("extra", "pkg://hydra.conf")]) != touched
    here = cache.key("config", ["x=1"], "cli", search)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # hydra.runtime.cwd is part of the composition
    assert cache.key("config", ["x=1"], "cli", search) != here


def test_the_cache_reads_only_a_private_directory_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE_DIR", str(tmp_path / "c"))
    cfg = OmegaConf.create({"a": 1})
    cache.store("k", cfg)
    assert cache.load("k") == cfg
    os.chmod(tmp_path / "c", 0o777)
    assert cache.load("k") is None  # others could have written it
    os.chmod(tmp_path / "c", 0o700)
    monkeypatch.setenv("SERVESIM_NO_CACHE", "1")
    assert cache.load("k") is None
    cache.store("k2", cfg)
    assert not (tmp_path / "c" / "k2.pkl").exists()


def test_a_broken_or_unwritable_cache_only_means_composing(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE_DIR", str(tmp_path / "c"))
    cache.store("k", OmegaConf.create({"a": 1}))
    (tmp_path / "c" / "k.pkl").write_bytes(b"servesim-config-cache-1\nnot a pickle")
    assert cache.load("k") is None
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SERVESIM_CACHE_DIR", str(tmp_path / "file" / "c"))  # cannot be made
    cache.store("k", OmegaConf.create({"a": 1}))
    assert cache.load("k") is None


def test_a_config_that_sets_hydra_mode_goes_through_the_decorator(tmp_path):
    proc, probe = _probe(tmp_path, *SMALL, "hydra.mode=RUN", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert probe["composed"] >= 3 and (tmp_path / "run" / "summary.json").is_file()


def test_the_cache_keeps_a_bounded_number_of_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for i in range(5):
        cache.store(f"k{i}", OmegaConf.create({"i": i}))
        os.utime(tmp_path / f"k{i}.pkl", ns=(i, i))
    assert sorted(p.stem for p in tmp_path.glob("*.pkl")) == ["k2", "k3", "k4"]


SCENARIOS = [
    [],
    ["engine=vllm_v1"],
    ["engine=sglang"],
    ["engine=trtllm", "scheduler.max_batch_tokens=16384"],
    ["hardware=h200", "model=llama-3.1-70b", "cluster.tp=4"],
    ["experiment=tier_shedding"],
    ["experiment=disaggregation_ratio"],
    ["cluster=disaggregated"],
    ["workload.rate_schedule=[[0,10],[5,30]]"],
    ["scheduler=chunked_prefill", "memory.prefix_caching=true"],
]


@pytest.mark.parametrize("overrides", SCENARIOS, ids=lambda o: " ".join(o) or "default")
def test_scenario_yaml_is_what_omegaconf_writes(overrides):
    cfg = simulator.load_config(overrides)
    assert _exact(cfg, ScenarioConfig)  # the direct path, not OmegaConf's
    assert scenario_yaml(cfg) == OmegaConf.to_yaml(OmegaConf.structured(cfg))


def test_scenario_yaml_of_hand_built_configs():
    """Values OmegaConf would convert (an int where a float is declared, a tuple, MISSING) take OmegaConf's path."""
    for cfg, direct in (
        (ScenarioConfig(workload=WorkloadConfig(rate=8)), False),  # type: ignore[arg-type]
        (ScenarioConfig(workload=WorkloadConfig(rate_schedule=((0, 1.0),))), False),  # type: ignore[arg-type]
        (ScenarioConfig(seed=3), False),  # MISSING ("???") where a float is declared
        (dataclasses.replace(simulator.load_config([]), seed=3, tiers={"gold": TierConfig(), "free": TierConfig()}), True),
    ):
        assert _exact(cfg, ScenarioConfig) is direct
        assert scenario_yaml(cfg) == OmegaConf.to_yaml(OmegaConf.structured(cfg))


def test_catalog_entries_are_parsed_once_and_handed_out_fresh():
    first = catalog.load_hardware("h200")
    first.memory_gb = -1.0
    second = catalog.load_hardware("h200")
    assert second.memory_gb > 0 and second is not first
    assert catalog._parsed.cache_info().hits >= 1


def test_importing_the_schema_builds_nothing_and_the_scenario_package_registers_it():
    code = (
        "from hydra.core.config_store import ConfigStore\n"
        "from simulator.config import schema\n"
        "print('base_config.yaml' in ConfigStore.instance().repo, schema.schema_node.cache_info().misses)\n"
        "import simulator.scenarios\n"
        "print('base_config.yaml' in ConfigStore.instance().repo, schema.schema_node.cache_info().misses)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["False 0", "True 1"]


def test_hydra_composes_the_tree_without_anyone_registering_it_first():
    """hydra's own compose API: the scenario package registers base_config as hydra imports it."""
    code = (
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module('simulator.scenarios', version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['workload.rate=3'])\n"
        "print(type(cfg.workload).__name__, cfg.workload.rate, cfg.workload.users)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "DictConfig 3.0 16"


@pytest.mark.parametrize("overrides", [[], ["experiment=tier_shedding"], ["cluster=disaggregated"], ["seed=${workload.users}"]])
def test_reading_a_composition_beside_its_hydra_node_is_what_the_job_reads(overrides):
    """to_scenario on the CLI's composition (hydra node included) reads it in place; the job
    reads hydra's copy without the node: the same scenario."""
    import copy

    from hydra import compose, initialize_config_module
    from omegaconf import open_dict, read_write

    from simulator.config import to_scenario
    from simulator.config.compose import _object_beside_hydra

    with initialize_config_module("simulator.scenarios", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        del job["hydra"]
    assert to_scenario(cfg) == to_scenario(job) == OmegaConf.to_object(job)
    interpolates = any("${" in o for o in overrides)
    assert (_object_beside_hydra(cfg) is None) is interpolates  # an interpolation takes the copy's path


def test_a_scenario_that_interpolates_hydra_reads_as_the_job_reads_it():
    """${hydra.job.name} resolves beside the hydra node but not in the job's copy: to_scenario
    does not read it in place, and fails as the job would."""
    from hydra import compose, initialize_config_module

    from simulator.config import to_scenario
    from simulator.errors import ConfigError

    with initialize_config_module("simulator.scenarios", version_base="1.3"):
        cfg = compose("config", overrides=["workload.name=${hydra.job.name}"], return_hydra_config=True)
    assert cfg.workload.name  # resolves here
    with pytest.raises(ConfigError):
        to_scenario(cfg)


def test_the_schema_is_registered_once():
    from hydra.core.config_store import ConfigStore

    register()
    node = ConfigStore.instance().repo["base_config.yaml"]
    register()
    assert ConfigStore.instance().repo["base_config.yaml"] is node


def test_the_event_loop_runs_with_few_cyclic_collections_and_restores_the_thresholds(monkeypatch):
    """simulate() raises the collector's youngest-generation threshold while the event loop
    runs (simulation.few_collections) and puts the caller's thresholds back afterwards, also
    when the run fails."""
    import gc

    from simulator import simulation

    seen = []

    def spy(env, gateway, cfg, workload):
        seen.append(gc.get_threshold()[0])
        raise RuntimeError("stop")

    import simulator.progress as progress

    monkeypatch.setattr(progress, "run_until_done", spy)
    before = gc.get_threshold()
    cfg = simulator.load_config(["workload.num_requests=5"])
    with pytest.raises(RuntimeError, match="stop"):
        simulation.simulate(cfg)
    assert seen == [simulation.GC_GEN0_THRESHOLD] and gc.get_threshold() == before

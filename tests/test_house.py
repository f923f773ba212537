"""The house rules that keep `dvc repro` honest and params strict, checked against the code itself.

DVC reruns a stage only when one of its `deps` changes, so a module a stage imports but does not
list is a cache that can go stale without warning. These tests read each stage's imports (an
`ast` walk over our own modules, function-level imports included) and compare them with dvc.yaml.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

from benchmarks.decoders import cpu_demo
from helpers import REPO, committed_params
from model.config import LOSS_TERMS
from pipeline import config as cfg

PACKAGES = ("pipeline", "model")


def module_file(name: str) -> Path | None:
    """The file of one of our modules (`pipeline.features.store`), or None for a third-party one."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports at run time, at any depth of the file (imports under
    `if TYPE_CHECKING:` run only for type checkers and are left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from pipeline.features import store` imports the module pipeline.features.store
            names.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
    return {n for n in names if module_file(n)}


def _is_empty_package(path: Path) -> bool:
    """A package __init__ with nothing but a docstring cannot change what a stage computes."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body
    )


def import_closure(module: str) -> set[Path]:
    """The files of every project module that running `python -m module` executes."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(imported_modules(module_file(name)))  # type: ignore[arg-type]
    files = {module_file(n) for n in seen}
    return {f.relative_to(REPO) for f in files if f is not None and not _is_empty_package(f)}


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def covered(path: Path, deps: list[str]) -> bool:
    """A dep names the file itself or a folder above it."""
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def stage_module(stage: dict) -> str:
    match = re.fullmatch(r"python -m ([\w.]+)", stage["cmd"].strip())
    assert match, f"cmd {stage['cmd']!r} is not `python -m <module>`: the import walk needs the module"
    return match.group(1)


@pytest.mark.parametrize("name", list(stages()))
def test_every_module_a_stage_imports_is_among_its_deps(name: str) -> None:
    stage = stages()[name]
    deps = [d for d in stage.get("deps", []) if "${" not in d]
    missing = sorted(str(p) for p in import_closure(stage_module(stage)) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} runs code it does not list in deps: {missing}"


@pytest.mark.parametrize("name", list(stages()))
def test_every_code_dep_of_a_stage_is_a_module_it_imports(name: str) -> None:
    # The converse keeps dvc.yaml exact: a listed module the stage never runs reruns it for nothing.
    stage = stages()[name]
    closure = {str(p) for p in import_closure(stage_module(stage))}
    code = [d for d in stage.get("deps", []) if d.endswith(".py")]
    assert not [d for d in code if d not in closure], f"dvc.yaml stage {name!r} lists modules it does not import"


def test_the_import_walk_sees_function_level_imports() -> None:
    # train.py imports the training loop inside main(), so that --help does not load torch.
    assert Path("pipeline/training/loop.py") in import_closure("pipeline.train")


def test_a_dep_removed_from_dvc_yaml_is_caught() -> None:
    # The planted fault: drop one imported module from train's deps and the check must see it.
    stage = copy.deepcopy(stages()["train"])
    stage["deps"].remove("pipeline/training/step.py")
    missing = [p for p in import_closure(stage_module(stage)) if not covered(p, stage["deps"])]
    assert Path("pipeline/training/step.py") in missing


# --- params ---------------------------------------------------------------------------------------

SECTION_BUILDERS = {
    "data": cfg.data_config,
    "features": cfg.features_config,
    "align": cfg.align_config,
    "train": cfg.train_config,
    "vocoder": cfg.vocoder_config,
    "eval": cfg.eval_config,
    "lr_find": cfg.lr_find_config,
    "model": lambda p: cfg.model_config(p, 10, 1, 1, 80),
}


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        if isinstance(v, dict) and k != "sizes":
            out += leaf_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def test_every_params_section_has_a_typed_config() -> None:
    assert set(committed_params()) == set(SECTION_BUILDERS)


@pytest.mark.parametrize("section", list(SECTION_BUILDERS))
def test_every_section_builds_from_the_committed_params(section: str) -> None:
    # A key removed by hand from params.yaml (or a config field without its key) fails here,
    # naming the key, before any stage runs.
    SECTION_BUILDERS[section](committed_params())


@pytest.mark.parametrize("key", leaf_keys(committed_params()))
def test_every_params_key_is_read_by_its_config(key: str) -> None:
    # Removing the key must make its section's config fail, naming it: the config reads it.
    params = committed_params()
    section, *path = key.split(".")
    node = params[section]
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    with pytest.raises(cfg.ConfigError, match=re.escape(path[-1])):
        SECTION_BUILDERS[section](params)


def _used_attributes() -> set[str]:
    """Names read as attributes or keys anywhere in our code outside pipeline/config.py."""
    names: set[str] = set()
    for path in [*REPO.glob("pipeline/**/*.py"), *REPO.glob("model/**/*.py")]:
        if path == REPO / "pipeline" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


@pytest.fixture(scope="module")
def used_names() -> set[str]:
    """What the code reads, parsed once for the module: per key, parsing every file again took
    about a third of a second, for 160 keys."""
    # Config-internal uses count too (loss weights and settings are assembled in config.py).
    used = _used_attributes() | set(re.findall(r"self\.(\w+)", (REPO / "pipeline" / "config.py").read_text()))
    return used | {f"{t}_loss_weight" for t in LOSS_TERMS}  # TrainConfig.loss_weights reads them by this pattern


@pytest.mark.parametrize("key", leaf_keys(committed_params()))
def test_every_params_key_is_used_by_the_code(key: str, used_names: set[str]) -> None:
    # A key a config accepts but no code reads is a knob that does nothing.
    assert key.split(".")[-1] in used_names, f"params.yaml {key} is read into a config but used nowhere"


@pytest.mark.parametrize("section", list(SECTION_BUILDERS))
def test_an_unknown_key_names_itself_and_the_nearest_known_one(section: str) -> None:
    params = committed_params()
    known = sorted(k for k, v in params[section].items() if not isinstance(v, dict) or k == "sizes")
    typo = known[0][:-1] + "x" if len(known[0]) > 3 else known[0] + "x"
    params[section][typo] = 1
    with pytest.raises(cfg.ConfigError) as e:
        SECTION_BUILDERS[section](params)
    assert f"{section}.{typo}" in str(e.value) and f"did you mean {section}.{known[0]}" in str(e.value)


def test_a_typo_in_train_is_refused_with_a_suggestion() -> None:
    params = committed_params()
    params["train"]["val_evry"] = 5
    with pytest.raises(cfg.ConfigError, match=r"train\.val_evry \(did you mean train\.val_every\?\)"):
        cfg.train_config(params)


# --- tests independent of the workspace -----------------------------------------------------------


def demo_overrides() -> dict[str, str]:
    """The `-S key=value` overrides `./setup.sh repro` passes to `dvc exp run` (its CPU_DEMO array)."""
    return cpu_demo(REPO)


def test_the_suite_reads_the_committed_params_not_the_ones_an_experiment_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `dvc exp run -S ...` writes its overrides into the workspace params.yaml; the suite must
    # still see the documented defaults. Build a checkout, commit its params, then rewrite them
    # the way the demo does.
    import subprocess

    monkeypatch.delenv("HAMGARA_TEST_PARAMS", raising=False)
    repo = tmp_path / "checkout"
    repo.mkdir()
    defaults = committed_params()
    (repo / "params.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False), encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.email=t@hamgara", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "defaults"], check=True)
    changed = copy.deepcopy(defaults)
    overrides = demo_overrides()
    assert overrides["train.max_steps"] == "4400"  # an experiment's value, far from the documented one
    for key, value in overrides.items():
        section, name = key.split(".")
        changed[section][name] = yaml.safe_load(value)
    (repo / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False), encoding="utf-8")

    assert committed_params(repo) == defaults
    assert committed_params(repo)["train"]["max_steps"] != changed["train"]["max_steps"]
    cfg.train_config(committed_params(repo))  # and the defaults still build


# --- layout ---------------------------------------------------------------------------------------

# The top of pipeline/ is the commands plus the config; everything else lives in a subpackage.
TOP_LEVEL = {
    "__init__",
    "cli",
    "config",
    "corpus",
    "validate",
    "precompute",
    "train",
    "vocoder",
    "evaluate",
    "synth",
    "doctor",
}
TOP_LEVEL |= {"model_info", "lr_find", "export", "serve"}


def test_the_top_of_pipeline_holds_only_the_commands_and_the_config() -> None:
    assert {p.stem for p in (REPO / "pipeline").glob("*.py")} == TOP_LEVEL


def test_no_module_imports_a_command_module() -> None:
    # A command is an entry point: library code (and other commands) must not depend on one,
    # or a change to a command's printing would rerun the stages that import it.
    commands = {f"pipeline.{m}" for m in TOP_LEVEL - {"__init__", "config"}}
    offenders = []
    for path in [*REPO.glob("pipeline/**/*.py"), *REPO.glob("model/**/*.py")]:
        for name in imported_modules(path) & commands:
            offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, offenders


def test_every_library_module_sits_in_a_subpackage_named_for_its_concern() -> None:
    packages = {p.parent.name for p in (REPO / "pipeline").glob("*/__init__.py")}
    assert packages == {
        "common",
        "demo",
        "data",
        "features",
        "training",
        "vocoding",
        "evaluation",
        "exporting",
        "runtime",
        "serving",
    }

"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) for the installed transformers version.

The wheel does not ship them; the release's source distribution does, as `tests/test_modeling_common.py` and
`tests/test_configuration_common.py`. `fetch()` downloads that sdist from the package registry (`pip download`),
once per version, into `.cache/transformers-tests/<version>/` (or `$MRCONV_TRANSFORMERS_TESTS`), and lays the two
files out as the package `transformers_common_tests`; `load()` imports it, fetching first if needed. No file of
transformers is kept in this repository. A failed download raises: the common tests never skip silently.

Three modules those files import are absent from the sdist; the package gets stand-ins written here:
- `exporters.test_export.ExportTesterMixin`: an empty base class (the torch.export tests it holds are not run);
- `generation.test_utils.GenerationTesterMixin`: an empty class (MRConv does not generate);
- `utils.test_configuration_utils.config_common_kwargs`: non-default values of common `PreTrainedConfig` fields,
  which `ConfigTester` passes to the config and reads back.

Fetch ahead (CI does, `.ci/run`): `python tests/transformers_common.py`.
"""

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import transformers


PACKAGE = "transformers_common_tests"
UPSTREAM_FILES = ("test_modeling_common.py", "test_configuration_common.py")
STAND_INS = {
    "exporters/test_export.py": (
        '"""Stand-in: the sdist does not ship tests/exporters/test_export.py (its torch.export tests are not run)."""\n'
        "\n\nclass ExportTesterMixin:\n    pass\n"
    ),
    "generation/test_utils.py": (
        '"""Stand-in: the sdist does not ship tests/generation/test_utils.py (MRConv does not generate)."""\n'
        "\n\nclass GenerationTesterMixin:\n    pass\n"
    ),
    "utils/test_configuration_utils.py": (
        '"""Stand-in: the sdist does not ship tests/utils/test_configuration_utils.py; non-default values of common\n'
        'PreTrainedConfig fields that ConfigTester sets and reads back."""\n'
        "\nconfig_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "dtype": "float16",\n'
        '    "problem_type": "multi_label_classification",\n'
        '    "id2label": {0: "negative", 1: "positive"},\n'
        '    "label2id": {"negative": 0, "positive": 1},\n'
        '    "pad_token_id": 3,\n'
        '    "bos_token_id": 1,\n'
        '    "eos_token_id": 2,\n'
        '    "architectures": ["MRConvForSequenceClassification"],\n'
        "}\n"
    ),
}


def cache_root() -> Path:
    default = Path(__file__).resolve().parent.parent / ".cache" / "transformers-tests"
    return Path(os.environ.get("MRCONV_TRANSFORMERS_TESTS", default)) / transformers.__version__


def fetch() -> Path:
    """The folder of the `transformers_common_tests` package for the installed transformers; downloads if absent."""
    package = cache_root() / PACKAGE
    if all((package / name).is_file() for name in UPSTREAM_FILES):
        return package
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        result = subprocess.run(
            [*command, "--dest", tmp, f"transformers=={version}"], capture_output=True, text=True, timeout=600
        )
        archives = sorted(Path(tmp).glob(f"transformers-{version}.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(
                f"Could not download the source distribution of transformers=={version} from the package registry "
                f"(needed for transformers' common tests):\n{result.stderr[-2000:]}"
            )
        staging = Path(tmp) / PACKAGE
        staging.mkdir()
        with tarfile.open(archives[0]) as archive:
            for name in UPSTREAM_FILES:
                member = archive.extractfile(f"transformers-{version}/tests/{name}")
                (staging / name).write_bytes(member.read())
        for relative, text in {"__init__.py": "", **STAND_INS}.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.write_text(text)
        package.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(package, ignore_errors=True)
        shutil.move(str(staging), package)
    return package


def load(module: str) -> ModuleType:
    """`transformers_common_tests.<module>` (e.g. `test_modeling_common`), fetched on first use."""
    if PACKAGE not in sys.modules:
        package = fetch()
        spec = importlib.util.spec_from_file_location(
            PACKAGE, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[PACKAGE])
    return importlib.import_module(f"{PACKAGE}.{module}")


if __name__ == "__main__":
    print(fetch())

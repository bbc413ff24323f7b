"""The accuracy study of `scripts/compare.py`: model zoo (`study.models`), task presets (`study.presets`), one
training run (`study.runner`), the resumable grid (`study.grid`) and the report (`study.report`)."""

"""The accuracy study of `scripts/compare.py`: a study file under `configuration/study/` (`study.config`), the
resumable grid (`study.grid`), one cell through the training loop of `scripts/train.py` (`study.runner`) and the
report (`study.report`)."""

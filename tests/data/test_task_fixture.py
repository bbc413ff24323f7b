"""The generated tasks give what they gave when `tests/fixtures/generated_tasks.json` was recorded (issue 18: the
move onto `datasets` must keep every generated item, split size and label name)."""

import json

import pytest
from record_task_fixture import CONFIGS, FIXTURE, build_with_task_data, record


@pytest.mark.slow
def test_generated_tasks_match_the_recorded_fixture():
    expected = json.loads(FIXTURE.read_text())
    assert set(expected) == set(CONFIGS)
    got = record(build_with_task_data)
    for task in CONFIGS:
        assert got[task] == expected[task], task

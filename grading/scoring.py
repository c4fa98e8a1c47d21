"""TEMPORARY (lead's branch r12): the one scoring rule comes from helper H3's branch at merge."""
from __future__ import annotations

from grading.grade import ModuleGrade


def score_modules(course, tests: dict, collect_errors: dict) -> dict:
    grades = {m.id: ModuleGrade(m) for m in course.modules}
    for nodeid, t in tests.items():
        m = course.module_for_path(nodeid)
        if m is not None:
            grades[m.id].tests[nodeid] = t
    for path, message in collect_errors.items():
        m = course.module_for_path(path)
        if m is not None:
            grades[m.id].collect_errors[path] = message
    return grades

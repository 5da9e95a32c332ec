"""Runs: the folders stages write, what each holds, and which runs each was built from.

``folders`` numbers, commits and finds run folders.
"""

from bddengine.runs.folders import (
    CONFIG_FILE,
    RESULT_FILE,
    RESUMABLE_MARKER,
    TMP_PREFIX,
    RunLookupError,
    RunRef,
    StageRun,
    clean_stale_tmp,
    discard_resumable,
    find_resumable,
    find_same_run,
    folder_bytes,
    latest_run,
    list_runs,
    package_versions,
    parse_run_name,
    resolve_input,
    write_json,
)

__all__ = [
    "CONFIG_FILE", "RESULT_FILE", "RESUMABLE_MARKER", "TMP_PREFIX", "RunLookupError", "RunRef", "StageRun",
    "clean_stale_tmp", "discard_resumable", "find_resumable", "find_same_run", "folder_bytes", "latest_run",
    "list_runs", "package_versions", "parse_run_name", "resolve_input", "write_json",
]

"""Helpers for the CLI end-to-end tests."""

import json

from axdnn.cli import main


def run_cli(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args):
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_clean_error(result, needle):
    """Non-zero exit, one paragraph on stderr naming `needle`, and no traceback."""
    code, out, err = result
    assert code != 0, out
    assert "Traceback" not in err and "Traceback" not in out
    assert needle.lower() in err.lower(), err
    assert "\n\n" not in err.strip()

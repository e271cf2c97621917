"""The one check every fuzz table runs (issue 29): a bad input exits with code 2 and one line
`tuneforge: error: …` that holds the expected words — no traceback, no other `tuneforge:` notice — and the folder it ran in is
left exactly as it was (nothing created, nothing changed, nothing deleted).

    from fuzzing import expect_user_error
    expect_user_error(["data", "stats", "{d}/x.jsonl"], ["x.jsonl:1"], root=tmp_path, capsys=capsys, d=inputs)
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.cli import main


def tree(root: Path) -> list[tuple[str, int, int]]:
    """Every path under `root` with its mtime and size: equal trees mean nothing was touched."""
    out = []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out.append((str(p.relative_to(root)), st.st_mtime_ns, st.st_size))
    return out


def expect_user_error(argv: list[str], words: list[str], root: Path, capsys, **fmt) -> str:
    """Run the CLI in-process on `argv` (each word formatted with `fmt`) and check the contract;
    returns the error line."""
    capsys.readouterr()
    before = tree(root)
    code = main([a.format(**fmt) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err, captured.err[-3000:]
    assert code == 2, (code, captured.err[-2000:])
    errors = [line for line in err if line.startswith("tuneforge: error:")]
    assert len(errors) == 1, err
    notices = [line for line in err if line.startswith("tuneforge:") and line not in errors]
    assert not notices, f"a refused command printed more than its error: {notices}"
    assert all(w in errors[0] for w in words), errors[0]
    assert tree(root) == before, "the failed command created, changed or deleted files"
    return errors[0]

"""`tito bench` (grading/bench.py): runs, writes the JSON schema of issue 7 and a Markdown report.

Only cheap cases run here (no timing is asserted: the machine may be busy); PyTorch is not needed.
"""
import argparse
import json

from grading import bench


def run(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    bench.register(sub)
    args = parser.parse_args(["bench", "--no-torch", "--repeats", "1", "--json", str(tmp_path / "b.json"),
                              "--markdown", str(tmp_path / "B.md"), *extra])
    assert args.func(args) == 0
    return json.loads((tmp_path / "b.json").read_text()), (tmp_path / "B.md").read_text()


def test_bench_writes_the_issue_7_json_schema_and_markdown(tmp_path, capsys):
    data, md = run(tmp_path, "--cases", "tiny_op_overhead_us", "softmax_cross_entropy_256")
    assert {"cpu", "cores", "numpy", "blas", "threads"} <= set(data["machine"])
    names = [c["name"] for c in data["cases"]]
    assert "tiny_op_overhead_us" in names and any(n.startswith("softmax_cross_entropy_256") for n in names)
    for case in data["cases"]:
        assert {"name", "tinytorch_ms", "torch_ms", "ratio"} <= set(case)
        assert case["tinytorch_ms"] > 0 and case["torch_ms"] is None and case["ratio"] is None
    assert "| case |" in md and "tito bench --markdown BENCHMARKS.md" in md
    assert "tiny_op_overhead_us" in capsys.readouterr().out


def test_milestone4_step_case_runs_at_a_small_batch():
    step, flops = bench.m4_step(batch=4)
    step()
    assert flops > 0


def test_blas_bound_note_names_the_batch_where_the_rate_drops():
    rows = [{"kind": "batch", "value": b, "gflops": g} for b, g in ((32, 10.0), (128, 30.0), (256, 40.0))]
    note = bench.blas_bound_note(rows)
    assert "batch <= 32" in note
    rows = [{"kind": "batch", "value": b, "gflops": 40.0} for b in (32, 256)]
    assert "BLAS-bound down to the smallest batch" in bench.blas_bound_note(rows)

"""The several-node command, on one machine: two ``torchrun --nnodes 2 --nproc-per-node 1``
launchers meeting at a c10d rendezvous on 127.0.0.1, running the real pipeline with FSDP.

What must hold, as for one node: the run succeeds on both "nodes", one MLflow run, one set
of checkpoints — sharded ``.dcp`` folders, each rank writing only its own shard files —
and a best model that one process loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from dist_helpers import run_two_nodes
from mlflow.tracking import MlflowClient
from project_runs import TINY_PARAMS, make_scratch_project, merge, run_folders

from weighted_mtp.models import MetaLlamaMTPAdapter
from weighted_mtp.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).with_name("launcher.py")
EXPERIMENT = "weighted-mtp/verifiable"
# As test_torchrun_pipeline's run (4 stage-2 steps), sharded, without the evaluation pipeline.
PARAMS = merge(TINY_PARAMS, {"training": {"stage2": {"n_epochs": 0.8}, "distributed": {"strategy": "fsdp"}}})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    project = make_scratch_project(tmp_path_factory.mktemp("project"))
    (project / "conf" / "fsdp").mkdir()
    (project / "conf" / "fsdp" / "parameters.yml").write_text(yaml.safe_dump(PARAMS))
    out = tmp_path_factory.mktemp("observed")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}", "WMTP_DATA_ROOT": str(project / "data"),
           "WMTP_PROGRESS": "0", "WMTP_TEST_OUT": str(out), "KEDRO_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    nodes = run_two_nodes([str(LAUNCHER), "--env", "fsdp", "--pipelines", "data_processing,stage1,stage2"],
                          project, env, timeout=400)
    observed = {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(2)}
    return {"project": project, "out": out, "nodes": nodes, "observed": observed}


@pytest.mark.timeout(450)
def test_both_nodes_finish_one_run(run):
    for node in run["nodes"]:
        assert node.returncode == 0, node.stdout[-4000:]
    output = "".join(node.stdout for node in run["nodes"])
    assert output.count("Pipeline execution completed successfully") == 1
    assert output.count("Joined the process group: 2 ranks, backend gloo") == 1
    assert "FSDP: 5 blocks and the root sharded over 2 ranks" in output
    # load_model: the generated micro model read by rank 0 alone, into shards
    assert re.search(r"Loaded micro-mtp from \S+/micro-mtp into FSDP shards \(rank 0 read it, 2 ranks\)", output)
    client = MlflowClient(f"sqlite:///{run['out'] / 'mlflow.db'}")
    (tracked,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert tracked.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(tracked.info.run_id, "stage2/train/loss")] == [2, 4]


def test_one_set_of_sharded_checkpoints(run):
    (folder,) = run_folders(run["project"] / "data/06_models/checkpoints/default")
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["checkpoint_stage1_best.dcp", "checkpoint_stage1_final.dcp",
                     "checkpoint_stage2_best.dcp", "checkpoint_stage2_final.dcp"]
    for name in names:
        assert sorted(p.name for p in (folder / name).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    final = load_checkpoint(folder / "checkpoint_stage2_final.dcp")
    assert (final["global_step"], final["total_steps"]) == (4, 4)
    # rank 1 writes its own shard files and nothing else in the project
    written = {Path(w.split(" ", 1)[1]).name for w in run["observed"][1]["writes"] if w.startswith("open ")}
    assert written == {"__1_0.distcp"}


def test_the_best_model_loads_in_one_process(run):
    best = run["project"] / "data/07_model_output/best_model/default"
    model = MetaLlamaMTPAdapter.from_pretrained(best)
    (folder,) = run_folders(run["project"] / "data/06_models/checkpoints/default")
    exported = MetaLlamaMTPAdapter.from_pretrained(folder / "checkpoint_stage2_best.dcp" / "model")
    for key, value in exported.state_dict().items():
        assert (model.state_dict()[key] == value).all(), key

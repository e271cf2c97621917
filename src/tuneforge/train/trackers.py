"""Optional experiment trackers for the training loop: TensorBoard, MLflow and Weights & Biases,
off by default.

`train.report_to: [tensorboard, mlflow, wandb]` mirrors every metrics row of train_log.jsonl (which
is always written) to the chosen trackers. Nothing is sent anywhere unless asked: TensorBoard writes
event files under RUN_DIR/tensorboard; MLflow logs to its configured tracking URI (a local
./mlruns folder unless MLFLOW_TRACKING_URI says otherwise); W&B writes RUN_DIR/wandb/ and uploads to
the account `wandb login` set up — with WANDB_MODE=offline it only writes (sync later with
`wandb sync RUN_DIR/wandb/offline-run-…`). WANDB_PROJECT names the project (default tuneforge).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tuneforge.errors import ConfigError, suggest

TRACKERS = ("tensorboard", "mlflow", "wandb")


class TensorBoardTracker:
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, row: dict, step: int) -> None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    def __init__(self, run_dir: Path, config: dict):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=run_dir.name)
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, row: dict, step: int) -> None:
        self.mlflow.log_metrics(
            {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}, step=step
        )

    def close(self) -> None:
        self.mlflow.end_run()


class WandbTracker:
    def __init__(self, run_dir: Path, config: dict):
        import os

        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "tuneforge"),
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
            reinit="finish_previous",
        )

    def log(self, row: dict, step: int) -> None:
        self.run.log(
            {f"train/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}, step=step
        )

    def close(self) -> None:
        self.run.finish()


PACKAGES = {
    "tensorboard": ("tensorboard", TensorBoardTracker),
    "mlflow": ("mlflow", MLflowTracker),
    "wandb": ("wandb", WandbTracker),
}


def check_trackers(names: list[str]) -> None:
    """Unknown names and missing packages are config errors, raised before any training."""
    for name in names:
        if name not in PACKAGES:
            raise ConfigError(
                f"train.report_to: unknown tracker '{name}'.{suggest(name, TRACKERS)} "
                f"Available: {', '.join(TRACKERS)} (or [] for none)"
            )
        package = PACKAGES[name][0]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"train.report_to: {name} needs the '{package}' package: pip install {package}")


def open_trackers(names: list[str], run_dir: Path, config: dict) -> list:
    check_trackers(names)
    return [PACKAGES[name][1](run_dir, config) for name in names]

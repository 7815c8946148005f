"""Train a fold with nnUNetTrainerSoftLabel and save what reached the loss on the first training step.

Run as a script by tests/trainer/test_nnunet.py, in a child process whose environment holds
nnU-Net's folder variables (nnunetv2 reads them once, when it is first imported):

    python nnunet_train_capture.py DATASET FOLD OUT.npz

The trainer is the real one; a forward pre-hook on its loss module records the loss's inputs
(outputs, hard targets, soft targets: one tensor per deep-supervision scale) of the first
call, which is the first training iteration.
"""

import sys
import time

import numpy as np

from softlabel.trainer.nnunet.run import build_trainer, train
from softlabel.trainer.nnunet.trainer import SoftLabelTrainConfig


def main(dataset: str, fold: str, out: str) -> None:
    config = SoftLabelTrainConfig(loss="kl+ce+dice", beta=1.0, num_epochs=3, iterations_per_epoch=4, val_iterations_per_epoch=1)
    trainer = build_trainer(dataset, "3d_fullres", fold, config=config, device="cpu")
    trainer.initialize()
    captured: dict[str, np.ndarray] = {}

    def first_call(module, args):
        if captured:
            return
        outputs, targets, softs = args
        for i, (o, t, s) in enumerate(zip(outputs, targets, softs)):
            captured[f"output_shape_{i}"] = np.array(o.shape)
            captured[f"target_{i}"] = t.cpu().numpy()
            captured[f"soft_{i}"] = s.cpu().numpy()

    trainer.loss.register_forward_pre_hook(first_call)
    start = time.perf_counter()
    train(trainer, validate=True)
    captured["train_and_validate_s"] = np.array(time.perf_counter() - start)
    np.savez(out, **captured)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""nnU-Net v2 on soft labels (the ``nnunet`` extra): export, soft-target preprocessing, trainer.

- ``export``: a softlabel labelset (from the service, or a local raw dataset with its soft-label
  folder) as an nnU-Net raw dataset, the soft labels in ``softlabelsTr/`` beside it;
- ``preprocess``: after ``nnUNetv2_plan_and_preprocess``, the soft labels through the same
  transpose, crop and (linear) resampling as the images, stored as ``<case>_soft.npy``;
- ``trainer``: ``nnUNetTrainerSoftLabel``, nnU-Net's trainer with soft targets and SPEC
  section 2's loss; its checkpoints name the stock ``nnUNetTrainer``, whose network and
  inference are the same, so that ``nnUNetv2_predict`` needs nothing of softlabel;
- ``run``: training a fold as ``nnUNetv2_train`` does, with the trainer built here.

Nothing here imports nnunetv2 at package import; docs/nnunet.md is the recipe.
"""

SOFT_FOLDER = "softlabelsTr"  # beside imagesTr/ and labelsTr/ in the exported raw dataset
SOFT_SUFFIX = "_soft.npy"  # beside <case>.b2nd in nnUNet_preprocessed/<dataset>/<data identifier>/

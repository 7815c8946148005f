"""Files: NIfTI studies and soft labels, atomic writes, checksums, nnU-Net raw dataset layout."""

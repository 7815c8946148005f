"""The GPU check's rehearsal: bench/gpu_check.sh run here, without a CUDA device."""

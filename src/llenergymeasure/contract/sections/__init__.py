"""One module per backend: its section of an experiment (`pytorch:`, `vllm:`, `tensorrt:`) and
the rules that tie it to the rest of the experiment. The backend table names each one."""

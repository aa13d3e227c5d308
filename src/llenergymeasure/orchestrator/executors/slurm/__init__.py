"""The Slurm executor: one Slurm job per planned run (job arrays), llem on the compute node runs
the container lifecycle, the submitting llem follows the jobs and stays the manifest's only
writer.

Slurm is driven through its own parsable command-line output (`sbatch --parsable`, `squeue -o`,
`sacct --parsable2`): every cluster has those commands, and they are what a later llem needs to
find a study's jobs again by name. (submitit pickles Python callables for a node-side Python to
unpickle and tracks jobs per process; neither fits a run that is a container command, nor a
study that outlives the llem that submitted it.)
"""

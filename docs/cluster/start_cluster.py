"""Start a SLURM-backed Dask cluster for ehrbench and keep it up until Enter is pressed."""
import sys

import dask
import yaml
from dask_jobqueue import SLURMCluster

with open("jobqueue.yaml") as f:
    dask.config.update(dask.config.config, yaml.safe_load(f), priority="new")
jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 16
cluster = SLURMCluster(scheduler_options={"port": 8786, "dashboard_address": ":8787"})
print(cluster.job_script())
if "--print-only" in sys.argv:
    cluster.close()
    sys.exit(0)
cluster.scale(jobs=jobs)
print(f"scheduler at {cluster.scheduler_address}: ehrbench ... --scheduler {cluster.scheduler_address}")
input("press Enter to stop the cluster\n")
cluster.close()

"""Imported first by every workflow script: the job runs in the run's preloaded job server when it can, and this
process then exits with the job's status; otherwise the import returns and the script runs here
(k2trial.runtime.job_server)."""

from k2trial.runtime.job_server import run_in_server

run_in_server()

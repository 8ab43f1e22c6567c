"""serverbench's driver: the matrix, the run folder, and the processes of a run."""

"""The main job end to end: ``seqrec demo`` runs every part on a dataset and reports how well each recommends."""

"""The River online learner: prequential scoring and learning from the ``events`` topic, and its snapshots for serving."""

"""Mining: exclusions, k-NN search and mining precision over the unlabeled pool."""

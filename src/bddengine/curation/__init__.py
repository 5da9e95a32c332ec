"""Curation: which frames the loop sees (stratified sampling, pools, the slice index)."""

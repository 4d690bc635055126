"""The embedded default dataset: `vidla_hf.data.synthetic`."""

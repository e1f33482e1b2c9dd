"""Raw problems → Alpaca train/validation JSONL and a tokenizer."""

"""LoRA fine-tuning of the served model on a dataset snapshot, within the machine's memory."""

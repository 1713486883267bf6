"""Operations: health, metrics, logging and the operator's commands."""

"""The dashboard's figures: what the organization's agents did, what it cost, how the queue is."""

"""What stages run on: teacher actors, placement, embedding workers, progress."""

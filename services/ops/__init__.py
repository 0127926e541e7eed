"""Operations on the services' data as a whole: `twinaid backup` and `twinaid restore`."""

"""The media arena: batches take views of media decoded end to end, copies otherwise, and no batch's memory is reused."""

import torch

from training.media_arena import MediaArena, concat, consecutive_view

TILE = (3, 4, 4)


def filled(arena: MediaArena, n: int, value: int, shape=TILE, dtype=torch.uint8) -> torch.Tensor:
    t = arena.empty((n, *shape), dtype)
    t.fill_(value)
    return t


def test_consecutive_media_become_one_view_and_anything_else_a_copy():
    arena = MediaArena(min_items=8, reserve_bytes=0)
    a, b = filled(arena, 2, 1), filled(arena, 3, 2)
    batch = arena.gather([a, b])
    assert batch.data_ptr() == a.data_ptr() and batch.shape == (5, *TILE)
    assert torch.equal(batch, torch.cat([torch.full((2, *TILE), 1), torch.full((3, *TILE), 2)]).to(torch.uint8))
    c, hole, d = filled(arena, 1, 3), filled(arena, 1, 9), filled(arena, 2, 4)
    out = arena.gather([c, d])  # a skipped sample lies between them: copied, without it
    assert out.data_ptr() not in (c.data_ptr(), d.data_ptr())
    assert torch.equal(out, torch.cat([c, d])) and hole.unique().tolist() == [9]
    assert consecutive_view([d, c]) is None  # out of order
    assert consecutive_view([torch.zeros(1, 2), torch.zeros(1, 2)]) is None  # separate storages


def test_media_decoded_for_the_next_batch_move_and_keep_their_values():
    arena = MediaArena(min_items=4, reserve_bytes=0)
    a = filled(arena, 2, 1)
    overflow = filled(arena, 1, 7)  # decoded before the packer knew it starts the next batch
    first = arena.gather([a])
    before = overflow.data_ptr()
    nxt = filled(arena, 2, 8)
    assert overflow.data_ptr() != before and overflow.unique().tolist() == [7]
    second = arena.gather([overflow, nxt])
    assert second.data_ptr() == overflow.data_ptr()  # moved to the new buffer's start: still one view
    assert first.unique().tolist() == [1] and second[0].unique().tolist() == [7] and second[1:].unique().tolist() == [8]


def test_a_buffer_grows_mid_batch_without_losing_media():
    arena = MediaArena(min_items=2, reserve_bytes=0)
    parts = [filled(arena, 3, i) for i in range(5)]  # far past the first buffer
    batch = arena.gather(parts)
    assert torch.equal(batch, torch.cat([torch.full((3, *TILE), i, dtype=torch.uint8) for i in range(5)]))


def test_memory_of_a_live_batch_is_never_handed_out_again_and_a_dead_one_is_reused():
    arena = MediaArena(min_items=4, reserve_bytes=0)
    held = arena.gather([filled(arena, 4, 5)])
    for i in range(6):  # later batches, each dropped at once
        arena.gather([filled(arena, 4, 10 + i)])
        assert held.unique().tolist() == [5]
    ptr = held.data_ptr()
    del held
    reused = {arena.gather([filled(arena, 4, 20 + i)]).data_ptr() for i in range(4)}
    assert ptr in reused


def test_kinds_of_media_never_share_a_buffer():
    arena = MediaArena(min_items=4, reserve_bytes=0)
    tiles = filled(arena, 2, 1)
    mels = arena.empty((2, 5, 6), torch.float32).fill_(0.5)
    other = filled(arena, 1, 3, shape=(3, 8, 8))
    assert tiles.untyped_storage().data_ptr() != mels.untyped_storage().data_ptr()
    assert other.untyped_storage().data_ptr() != tiles.untyped_storage().data_ptr()
    assert arena.gather([tiles]).unique().tolist() == [1] and arena.gather([mels]).unique().tolist() == [0.5]


def test_concat_in_a_dataloader_worker_lands_in_shared_memory():
    class Parts(torch.utils.data.IterableDataset):
        def __iter__(self):
            for i in range(2):
                yield concat([torch.full((2, 3), i, dtype=torch.uint8), torch.full((1, 3), 9, dtype=torch.uint8)])

    for i, out in enumerate(torch.utils.data.DataLoader(Parts(), batch_size=None, num_workers=1)):
        assert out.is_shared() and out.tolist() == [[i] * 3, [i] * 3, [9] * 3]

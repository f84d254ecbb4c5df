"""The image history pool (Shrivastava et al.): D sees a mix of current and past fakes."""

import torch

# One image's fate in a query, decided before the image exists: (slot returned instead of the image or -1,
# slot the image is stored in or -1).
Choice = tuple[int, int]


class ImagePool:
    """Holds up to `size` past fakes. Until full, every query image is stored and returned; after that,
    with probability 1/2 the query is swapped for a random stored image (which it replaces), else
    returned as is. Randomness comes from an explicit torch.Generator so runs are reproducible and the
    pool's state is part of every checkpoint.

    The random choices depend only on how full the pool is, never on the images, so `draw` makes them on
    the host (consuming the generator exactly as the original code's per-image loop does) and `apply`
    carries them out; `query` is the two in a row. A captured CUDA step draws before the replay."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def draw(self, n: int, generator: torch.Generator) -> list[Choice]:
        choices, held = [], len(self.images)
        for _ in range(n):
            if self.size == 0:
                choices.append((-1, -1))
            elif held < self.size:
                choices.append((-1, held))
                held += 1
            elif torch.rand((), generator=generator).item() > 0.5:
                slot = int(torch.randint(self.size, (), generator=generator).item())
                choices.append((slot, slot))
            else:
                choices.append((-1, -1))
        return choices

    def apply(self, images: torch.Tensor, choices: list[Choice]) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for image, (take, store) in zip(images.detach(), choices):
            image = image.unsqueeze(0)
            out.append(self.images[take] if take >= 0 else image)
            if store == len(self.images):
                self.images.append(image.clone())
            elif store >= 0:
                self.images[store] = image.clone()
        return torch.cat(out, 0)

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, self.draw(len(images), generator))

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [img.cpu() for img in self.images]}

    def load_state_dict(self, state: dict, device=None) -> None:
        self.size = state["size"]
        self.images = [img.to(device) for img in state["images"]]

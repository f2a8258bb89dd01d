/** Where an image sits in the tensor a model ran on, and how large it was when sent. */
export interface ImageGeometry {
  /** The resized image's size in the tensor (it starts at the top left; the rest is padding). */
  height: number;
  width: number;
  /** The image as the client sent it (after EXIF orientation): what boxes are reported in. */
  sourceHeight: number;
  sourceWidth: number;
}

/** Python 3's round() and numpy's: halves go to the even neighbour. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

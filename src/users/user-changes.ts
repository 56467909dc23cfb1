import { Injectable } from '@nestjs/common';

/** Tells whoever holds copies of users (the access-check cache) that one changed in a way they must see. */
@Injectable()
export class UserChanges {
  private readonly listeners: ((userId: number) => void)[] = [];

  subscribe(listener: (userId: number) => void): void {
    this.listeners.push(listener);
  }

  notify(userId: number): void {
    for (const listener of this.listeners) listener(userId);
  }
}
